"""MQTT credentials and access rules for the platform broker (security review M4, issue 16).

Mosquitto's ``acl_file`` checks what a client may *receive*, never what it may *subscribe*: a
plant credential could join the ingest share group (``$share/ingest/plants/+/readings``), be
handed a share of every plant's readings and have them dropped at delivery, and any client
could connect with the ingest worker's client id and take its session over. The platform
broker therefore runs Mosquitto's dynamic-security plugin (shipped with Mosquitto 2.0), which
checks subscriptions, and binds every gateway credential to its collector's client id (no
other credential can connect with that id, and the gateway with no other id). Measured on
Mosquitto 2.0.11 in ``tests/integration/test_broker_security.py``.

Who may do what (:func:`roles`):

- a **gateway** (one per collector gateway, bound to its client id ``energymon-<gateway>``
  or the gateway file's ``mqtt.client_id``): publish ``plants/<plant>/readings``; subscribe
  to and receive ``plants/<plant>/acks/<gateway>``; nothing else, not ``$SYS``;
- **ingest** (one credential shared by the workers, which pick their own client ids: a
  compose ``--scale`` cannot hand each replica its own secret; ingest runs on the platform's
  internal network): subscribe to ``$share/<group>/plants/+/readings`` (and the plain
  filter, for one worker on MQTT 3.1.1), publish ``plants/+/acks/+``;
- **admin**: the plugin's control topic (``$CONTROL/dynamic-security/#``) and ``$SYS``, used
  by ``energymon broker credentials apply`` to change a running broker without a restart.

Anonymous clients are refused (no anonymous group). Rotation without downtime: a credential's
user name carries a generation (``gw-jx-yujiang-cement~2``); rotating adds the next generation
and gives the old one a retirement time, both work until then, and ``retire`` removes what is
past it. The credential store (``credentials.json``, mode 0600) holds the secrets the operator
hands out; the broker's file (``dynamic-security.json``) holds only PBKDF2-SHA512 hashes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

__all__ = ["Credential", "CredentialStore", "CredentialError", "apply_to_broker",
           "dynsec_document", "roles", "STORE_FILE", "DYNSEC_FILE"]

STORE_FILE = "credentials.json"
DYNSEC_FILE = "dynamic-security.json"
SEPARATOR = "~"            # not in a fleet code (core.contract.CODE_PATTERN), safe in a URL
#: PBKDF2 rounds. The passwords are 256-bit random strings, so the rounds add nothing against
#: guessing; they cost broker CPU on every connect (1 000 plants reconnecting at once).
ITERATIONS = 1_000
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"

Kind = Literal["gateway", "ingest", "admin"]


class CredentialError(ValueError):
    """A credential operation that cannot be done (unknown user, bad store file)."""


@dataclass(frozen=True)
class Credential:
    base: str                      # gateway id, "ingest" or "admin"
    generation: int
    kind: Kind
    password: str = field(repr=False)
    plant: str | None = None       # a gateway's plant
    clientid: str | None = None    # the only client id a gateway credential may connect with
    created: str = ""              # ISO 8601
    retire_after: str | None = None

    @property
    def username(self) -> str:
        return f"{self.base}{SEPARATOR}{self.generation}"

    @property
    def rolename(self) -> str:
        return {"gateway": f"gateway:{self.base}", "ingest": "ingest",
                "admin": "admin"}[self.kind]

    def retired(self, now: datetime) -> bool:
        return self.retire_after is not None and datetime.fromisoformat(
            self.retire_after) <= now


def _acl(kind: str, topic: str) -> dict[str, Any]:
    return {"acltype": kind, "topic": topic, "allow": True}


def roles(credentials: Iterable[Credential], share_group: str = "ingest"
          ) -> list[dict[str, Any]]:
    """The plugin's roles for these credentials (one per gateway, ``ingest``, ``admin``)."""
    out: dict[str, dict[str, Any]] = {
        "ingest": {"rolename": "ingest", "acls": [
            _acl("subscribeLiteral", f"$share/{share_group}/plants/+/readings"),
            _acl("subscribeLiteral", "plants/+/readings"),
            _acl("publishClientReceive", "plants/+/readings"),
            _acl("publishClientSend", "plants/+/acks/+")]},
        "admin": {"rolename": "admin", "acls": [
            _acl("publishClientSend", f"{CONTROL_TOPIC.rsplit('/', 1)[0]}/#"),
            _acl("publishClientReceive", f"{CONTROL_TOPIC.rsplit('/', 1)[0]}/#"),
            _acl("subscribePattern", f"{CONTROL_TOPIC.rsplit('/', 1)[0]}/#"),
            _acl("publishClientReceive", "$SYS/#"), _acl("subscribePattern", "$SYS/#")]},
    }
    for c in credentials:
        if c.kind == "gateway" and c.rolename not in out:
            acks = f"plants/{c.plant}/acks/{c.base}"
            out[c.rolename] = {"rolename": c.rolename, "acls": [
                _acl("publishClientSend", f"plants/{c.plant}/readings"),
                _acl("subscribeLiteral", acks), _acl("publishClientReceive", acks)]}
    return list(out.values())


def hash_password(password: str, *, iterations: int = ITERATIONS,
                  salt: bytes | None = None) -> dict[str, Any]:
    """The plugin's password fields: PBKDF2-HMAC-SHA512, a 12-byte salt, a 64-byte hash."""
    salt = os.urandom(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return {"password": base64.b64encode(digest).decode(), "salt":
            base64.b64encode(salt).decode(), "iterations": iterations}


# default access: nothing may be published or subscribed unless a role allows it; what a
# client has subscribed to (allowed) it may receive
DEFAULT_ACCESS = {"publishClientSend": False, "publishClientReceive": True,
                  "subscribe": False, "unsubscribe": True}


def dynsec_document(credentials: Sequence[Credential], share_group: str = "ingest"
                    ) -> dict[str, Any]:
    """The plugin's configuration file for these credentials (hashes only)."""
    return {
        "defaultACLAccess": DEFAULT_ACCESS,
        "clients": [{"username": c.username, "textName": f"{c.kind} {c.base}",
                     **({"clientid": c.clientid} if c.clientid else {}),
                     **hash_password(c.password), "roles": [{"rolename": c.rolename}]}
                    for c in credentials],
        "groups": [],
        "roles": roles(credentials, share_group),
    }


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


@dataclass
class CredentialStore:
    """The operator's credentials (``DIR/credentials.json``, 0600): what ``apply`` makes the
    broker hold, and the secrets to hand out."""

    directory: Path
    credentials: list[Credential] = field(default_factory=list)
    share_group: str = "ingest"

    @classmethod
    def load(cls, directory: Path) -> CredentialStore:
        path = directory / STORE_FILE
        if not path.exists():
            return cls(directory)
        try:
            data = json.loads(path.read_text())
            return cls(directory, [Credential(**c) for c in data["credentials"]],
                       data.get("share_group", "ingest"))
        except (ValueError, KeyError, TypeError) as exc:
            raise CredentialError(f"{path}: not a credential store ({exc})") from None

    def save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        _write_private(self.directory / STORE_FILE, json.dumps(
            {"share_group": self.share_group,
             "credentials": [asdict(c) for c in self.credentials]}, indent=2) + "\n")
        _write_private(self.directory / DYNSEC_FILE, json.dumps(
            dynsec_document(self.credentials, self.share_group), indent=2) + "\n")

    def find(self, username: str) -> Credential:
        for c in self.credentials:
            if c.username == username:
                return c
        raise CredentialError(f"no credential {username!r} in {self.directory / STORE_FILE}")

    def current(self, base: str) -> Credential | None:
        """The newest generation of ``base``."""
        mine = [c for c in self.credentials if c.base == base]
        return max(mine, key=lambda c: c.generation) if mine else None

    def ensure(self, base: str, kind: Kind, plant: str | None = None,
               clientid: str | None = None, now: datetime | None = None
               ) -> tuple[Credential, bool]:
        """The current credential of ``base``, created (generation 1) if there is none."""
        have = self.current(base)
        if have is not None:
            if have.kind != kind or have.plant != plant or have.clientid != clientid:
                raise CredentialError(f"{have.username} is a {have.kind} credential"
                                      + (f" of plant {have.plant}" if have.plant else "")
                                      + f", not a {kind}" + (f" of plant {plant}" if plant
                                                             else ""))
            return have, False
        c = Credential(base, 1, kind, secrets.token_urlsafe(32), plant, clientid,
                       (now or datetime.now(UTC)).isoformat(timespec="seconds"))
        self.credentials.append(c)
        return c, True

    def rotate(self, base: str, window: timedelta, now: datetime | None = None
               ) -> Credential:
        """The next generation of ``base``; every older one retires after ``window``."""
        now = now or datetime.now(UTC)
        have = self.current(base)
        if have is None:
            raise CredentialError(f"no credential for {base!r} to rotate")
        retire = (now + window).isoformat(timespec="seconds")
        self.credentials = [replace(c, retire_after=c.retire_after or retire)
                            if c.base == base else c for c in self.credentials]
        new = Credential(base, have.generation + 1, have.kind, secrets.token_urlsafe(32),
                         have.plant, have.clientid, now.isoformat(timespec="seconds"))
        self.credentials.append(new)
        return new

    def retire(self, now: datetime | None = None) -> list[Credential]:
        """Remove every credential past its retirement time; the removed ones."""
        now = now or datetime.now(UTC)
        gone = [c for c in self.credentials if c.retired(now)]
        self.credentials = [c for c in self.credentials if not c.retired(now)]
        return gone

    def remove(self, base: str) -> list[Credential]:
        gone = [c for c in self.credentials if c.base == base]
        self.credentials = [c for c in self.credentials if c.base != base]
        return gone


# -- a running broker --------------------------------------------------------------------------
class _Control:
    """Commands to the dynamic-security plugin of a running broker, as the admin user."""

    def __init__(self, host: str, port: int, admin: Credential, *, tls: bool = False,
                 ca: str | None = None, timeout: float = 10.0) -> None:
        import ssl

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.timeout = timeout
        self._answers: list[dict[str, Any]] = []
        self._ready = threading.Condition()
        self._client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                   client_id=admin.username, protocol=mqtt.MQTTv5)
        self._client.username_pw_set(admin.username, admin.password)
        if tls:
            self._client.tls_set(ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED)
        self._client.on_message = self._on_message
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._connected: str | None = None
        self._subscribed = False
        self._client.connect(host, port)
        self._client.loop_start()
        with self._ready:
            if not self._ready.wait_for(lambda: self._connected is not None, timeout):
                raise CredentialError(f"broker {host}:{port} did not answer the admin login")
        if self._connected != "Success":
            self.close()
            raise CredentialError(f"broker {host}:{port} refused {admin.username}: "
                                  f"{self._connected}")
        self._client.subscribe(f"{CONTROL_TOPIC}/response", qos=1)
        with self._ready:
            self._ready.wait_for(lambda: self._subscribed, timeout)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        with self._ready:
            self._connected = str(rc)
            self._ready.notify_all()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, rcs: Any, props: Any
                      ) -> None:
        with self._ready:
            self._subscribed = True
            self._ready.notify_all()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._ready:
            self._answers.extend(json.loads(message.payload).get("responses", []))
            self._ready.notify_all()

    def run(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not commands:
            return []
        with self._ready:
            self._answers.clear()
        self._client.publish(CONTROL_TOPIC, json.dumps({"commands": commands}), qos=1)
        with self._ready:
            if not self._ready.wait_for(lambda: len(self._answers) >= len(commands),
                                        self.timeout):
                raise CredentialError("the broker's dynamic-security plugin did not answer "
                                      "(is `plugin mosquitto_dynamic_security.so` configured?)")
            return list(self._answers)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def apply_to_broker(store: CredentialStore, host: str, port: int, *, tls: bool = False,
                    ca: str | None = None) -> dict[str, list[str]]:
    """Make a running broker hold exactly the store's credentials and roles (created,
    deleted), without a restart; what changed."""
    admins = [c for c in store.credentials if c.kind == "admin"]
    if not admins:
        raise CredentialError("the store has no admin credential (run `energymon broker "
                              "credentials init` first)")
    control = None
    for admin in sorted(admins, key=lambda c: -c.generation):  # the newest the broker knows
        try:
            control = _Control(host, port, admin, tls=tls, ca=ca)
            break
        except CredentialError:
            if admin is min(admins, key=lambda c: c.generation):
                raise
    assert control is not None
    try:
        listed = control.run([{"command": "listClients"}, {"command": "listRoles"}])
        have_clients = set(next(a for a in listed if a["command"] == "listClients")
                           ["data"]["clients"])
        have_roles = set(next(a for a in listed if a["command"] == "listRoles")
                         ["data"]["roles"])
        want_roles = roles(store.credentials, store.share_group)
        # a role's ACLs follow from its name, so an existing role is left as it is
        commands: list[dict[str, Any]] = [{"command": "createRole", **role}
                                          for role in want_roles
                                          if role["rolename"] not in have_roles]
        want = {c.username: c for c in store.credentials}
        created = sorted(set(want) - have_clients)
        deleted = sorted(have_clients - set(want))
        commands += [{"command": "createClient", "username": u, "password": want[u].password,
                      **({"clientid": want[u].clientid} if want[u].clientid else {}),
                      "roles": [{"rolename": want[u].rolename}]} for u in created]
        commands += [{"command": "deleteClient", "username": u} for u in deleted]
        gone_roles = sorted(r for r in have_roles - {r["rolename"] for r in want_roles}
                            if r.startswith("gateway:"))
        commands += [{"command": "deleteRole", "rolename": r} for r in gone_roles]
        failed = [a for a in control.run(commands) if a.get("error")]
        if failed:
            raise CredentialError("the broker refused: " + "; ".join(
                f"{a['command']}: {a['error']}" for a in failed))
        return {"created": created, "deleted": deleted}
    finally:
        control.close()
