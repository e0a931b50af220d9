"""A local MQTT broker for the demo and the tests: Mosquitto started with a generated config.

The platform itself talks to whatever broker ``ENERGYMON_MQTT_URL`` names (Mosquitto, EMQX ...);
this module only runs one on 127.0.0.1 when none is configured. Passwords and ACLs are written
when ``users`` is given (each plant user may publish only to ``plants/<user>/...``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from app.brokerauth import DYNSEC_FILE, CredentialStore, dynsec_document
from app.brokerconf import DYNSEC_PLUGIN, TESTING, TlsFiles, acl_lines, config_lines
from core.ports import free_port


class BrokerError(RuntimeError):
    pass


class LocalBroker(Protocol):
    """What the demo needs of a local broker."""

    port: int

    @property
    def url(self) -> str: ...

    @property
    def mqtt_protocol(self) -> str: ...

    def start(self, timeout: float = 10) -> str: ...

    def stop(self) -> None: ...


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def find_dynsec_plugin() -> str | None:
    """Mosquitto's dynamic-security plugin on this machine (Debian, the official image)."""
    import glob

    for candidate in (DYNSEC_PLUGIN, *sorted(glob.glob(
            "/usr/lib/*-linux-gnu/mosquitto_dynamic_security.so")),
            "/usr/local/lib/mosquitto_dynamic_security.so"):
        if os.path.exists(candidate):
            return candidate
    return None


def _wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float, name: str) -> None:
    """Return once ``proc`` accepts TCP connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            raise BrokerError(f"{name} exited at start{': ' + err if err else ''}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port),
                                                                     timeout=0.2):
            return
        time.sleep(0.05)
    raise BrokerError(f"{name} did not listen on port {port} within {timeout} s")


def _terminate(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class _BrokerProcess:
    """A broker process on 127.0.0.1:``port`` (0 = a free port) with its state in ``workdir``."""

    workdir: Path
    port: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        if not self.port:
            self.port = free_port()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _wait_listening(self, timeout: float, name: str) -> str:
        """The URL once the started process listens; stops it and raises if it never does."""
        assert self._proc is not None
        try:
            _wait_listening(self._proc, self.port, timeout, name)
        except BrokerError:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        _terminate(self._proc)
        self._proc = None


@dataclass
class Mosquitto(_BrokerProcess):
    """A mosquitto process on 127.0.0.1:``port`` with its state under ``workdir``.

    ``users`` maps user name -> password; when given, anonymous access is off and the ACL lets
    user ``ingest`` (or any name in ``platform_users``) read everything, and every other user
    write only ``plants/<its name>/#``.
    """

    users: dict[str, str] | None = None
    platform_users: tuple[str, ...] = ("ingest",)
    #: the platform's access (app.brokerauth): the dynamic-security plugin with these
    #: credentials (the broker keeps its own copy of the file and changes it when told to)
    credentials: CredentialStore | None = None
    tls: TlsFiles | None = None
    persistence: bool = True
    #: Mosquitto's own defaults for queue and in-flight limits and autosave (the fault suite
    #: runs on them as well as on the project's settings)
    stock: bool = False


    mqtt_protocol = "5"

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        """The generated configuration (:mod:`app.brokerconf`, sized for tests), or with
        ``stock`` only what a test needs on top of Mosquitto's own defaults."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        # mosquitto started as root drops to user 'mosquitto', which cannot read a private
        # work directory; this broker is local to a test or the demo
        extra = ("user root",) if os.geteuid() == 0 else ()
        passwd = acl = None
        if self.users is not None:
            passwd = self.workdir / "passwd"
            passwd.write_text("")
            passwd.chmod(0o600)
            for user, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password],
                               check=True, capture_output=True)
            acl = self.workdir / "acl"
            acl.write_text("\n".join(acl_lines(self.platform_users)) + "\n")
        log = self.workdir / "mosquitto.log"
        dynsec, plugin = None, DYNSEC_PLUGIN
        if self.credentials is not None:
            found = find_dynsec_plugin()
            if found is None:
                raise BrokerError("Mosquitto's dynamic-security plugin is not installed "
                                  "(mosquitto_dynamic_security.so; Debian: package mosquitto)")
            plugin = found
            dynsec = self.workdir / DYNSEC_FILE
            if not dynsec.exists():  # the broker's own copy, changed by `credentials apply`
                dynsec.write_text(json.dumps(dynsec_document(
                    self.credentials.credentials, self.credentials.share_group)))
                dynsec.chmod(0o600)
        if self.stock:
            lines = [f"listener {self.port} 127.0.0.1",
                     f"persistence {'true' if self.persistence else 'false'}",
                     f"persistence_location {self.workdir}/", f"log_dest file {log}",
                     "log_type error", "log_type warning", *extra]
            lines += (["allow_anonymous true"] if passwd is None else
                      ["allow_anonymous false", f"password_file {passwd}", f"acl_file {acl}"])
        else:
            lines = config_lines(TESTING, listener=f"{self.port} 127.0.0.1",
                                 persistence_dir=self.workdir, persistence=self.persistence,
                                 password_file=passwd, acl_file=acl, log_file=log,
                                 dynsec_file=dynsec, dynsec_plugin=plugin, tls=self.tls,
                                 extra=extra)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self, timeout: float = 10) -> str:
        exe = find_mosquitto()
        if exe is None:
            raise BrokerError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        conf = self._write_config()
        self._proc = subprocess.Popen(
            [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        return self._wait_listening(timeout, "mosquitto")

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)
        self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


@dataclass
class PythonBroker(_BrokerProcess):
    """The embedded Python broker (amqtt, MQTT 3.1.1, anonymous, no persistence): the demo's
    fallback where Mosquitto is not installed. Without MQTT 5 there are no shared
    subscriptions, so the demo runs a single ingest worker on it."""

    mqtt_protocol = "3.1.1"


    def start(self, timeout: float = 20) -> str:
        import sys

        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "amqtt.yaml"
        conf.write_text(
            "listeners:\n  default:\n    type: tcp\n"
            f"    bind: 127.0.0.1:{self.port}\n"
            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
            "    allow_anonymous: true\n"
        )
        exe = Path(sys.executable).with_name("amqtt")
        if not exe.exists():
            raise BrokerError("neither mosquitto nor the amqtt package is installed")
        with open(self.workdir / "amqtt.log", "ab") as log:  # the child keeps its own copy
            self._proc = subprocess.Popen([str(exe), "-c", str(conf)], stdout=log, stderr=log)
        return self._wait_listening(timeout, f"amqtt (log: {self.workdir / 'amqtt.log'})")


def local_broker(workdir: Path, prefer: str = "auto") -> LocalBroker:
    """Mosquitto when installed (or ``prefer='mosquitto'``), else the embedded Python broker."""
    if prefer == "python" or (prefer == "auto" and find_mosquitto() is None):
        return PythonBroker(workdir)
    return Mosquitto(workdir)
