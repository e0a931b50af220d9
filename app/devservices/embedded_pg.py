"""An embedded PostgreSQL server for machines where no database URL is configured.

The server binaries come from the ``pgserver`` wheel (PostgreSQL 16, no system install needed)
or from any PostgreSQL installation given as ``bindir`` (e.g. a Debian server package that has
the TimescaleDB extension). The server listens on 127.0.0.1 only, on a port chosen once and
kept in the data directory, with password (SCRAM) authentication for TCP; the generated
superuser password is stored next to the data directory with mode 0600.

PostgreSQL refuses to run as root: when this process is root, the server runs as the system
user ``energymon-pg`` (created on first use).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import pwd
import re
import secrets
import stat
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from core.ports import free_port

log = logging.getLogger(__name__)

SYSTEM_USER = "energymon-pg"
SUPERUSER = "postgres"
CONF_NAME = "energymon.conf"


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised or started; the message says why."""


def pgserver_bindir() -> Path:
    """Binaries shipped in the ``pgserver`` wheel."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise EmbeddedPostgresError(
            "no database URL is configured and the 'pgserver' package (embedded PostgreSQL) "
            "is not installed: set ENERGYMON_DATABASE_URL or `pip install pgserver`"
        )
    return Path(spec.origin).parent / "pginstall" / "bin"


def find_postgres_with_extension(extension: str) -> Path | None:
    """The bin directory of an installed PostgreSQL whose library dir has ``extension``.

    Looks at ``pg_config`` on PATH and at Debian's ``/usr/lib/postgresql/*/bin``.
    """
    candidates: list[Path] = []
    for found in sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_config"), reverse=True):
        candidates.append(found.parent)
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry and (Path(entry) / "pg_config").exists():
            candidates.append(Path(entry))
    for bindir in candidates:
        try:
            pkglibdir = subprocess.run(
                [str(bindir / "pg_config"), "--pkglibdir"],
                check=True, capture_output=True, text=True,
            ).stdout.strip()
            sharedir = subprocess.run(
                [str(bindir / "pg_config"), "--sharedir"],
                check=True, capture_output=True, text=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            continue
        has_lib = any(Path(pkglibdir).glob(f"{extension}*.so"))
        has_control = (Path(sharedir) / "extension" / f"{extension}.control").exists()
        if has_lib and has_control and (bindir / "postgres").exists():
            return bindir
    return None


def _ensure_system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             SYSTEM_USER],
            check=True, capture_output=True, text=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


def _ensure_traversable(path: Path) -> None:
    """Let the server's system user traverse every parent of ``path`` (o+x)."""
    for parent in [path, *path.parents]:
        with contextlib.suppress(FileNotFoundError):
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH | stat.S_IROTH)


@dataclass(frozen=True)
class ServerInfo:
    port: int
    password: str

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}:{quote(self.password)}@127.0.0.1:{self.port}/{database}"


class EmbeddedPostgres:
    """A PostgreSQL cluster in ``datadir`` managed with initdb / pg_ctl.

    ``preload`` names libraries for ``shared_preload_libraries`` (e.g. ``timescaledb``);
    ``unsafe_fast`` turns off fsync (tests only: a crash of the machine may lose data).
    """

    def __init__(
        self,
        datadir: Path,
        *,
        bindir: Path | None = None,
        port: int = 0,
        preload: Sequence[str] = (),
        unsafe_fast: bool = False,
    ) -> None:
        self.datadir = Path(datadir).absolute()
        self.bindir = Path(bindir) if bindir else pgserver_bindir()
        self.requested_port = port
        self.preload = tuple(preload)
        self.unsafe_fast = unsafe_fast
        self.secret_file = self.datadir.with_name(self.datadir.name + ".secret")
        self.log_file = self.datadir / "server.log"
        self._run_as = _ensure_system_user() if os.geteuid() == 0 else None

    # -- commands ---------------------------------------------------------------------------
    def _run(self, exe: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / exe), *args]
        kwargs: dict[str, Any] = {}
        if self._run_as is not None:
            kwargs = {"user": self._run_as.pw_uid, "group": self._run_as.pw_gid,
                      "extra_groups": []}
        try:
            return subprocess.run(
                cmd, check=True, capture_output=True, text=True, timeout=timeout,
                cwd="/", **kwargs,
            )
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or exc.stdout or "").strip()
            tail = ""
            if self.log_file.exists():
                tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-15:])
            raise EmbeddedPostgresError(
                f"{exe} failed for embedded PostgreSQL in {self.datadir}: {detail}"
                + (f"\nserver log ({self.log_file}):\n{tail}" if tail else "")
            ) from exc

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.datadir.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.datadir.with_name(self.datadir.name + ".lock")
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def _init(self) -> None:
        password = secrets.token_urlsafe(24)
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.datadir.chmod(0o700)
        pwfile = self.datadir.with_name(self.datadir.name + ".initpw")
        pwfile.write_text(password + "\n")
        try:
            if self._run_as is not None:
                _ensure_traversable(self.datadir.parent)
                _ensure_traversable(self.bindir)
                os.chown(self.datadir, self._run_as.pw_uid, self._run_as.pw_gid)
                os.chown(pwfile, self._run_as.pw_uid, self._run_as.pw_gid)
            pwfile.chmod(0o600)
            self._run(
                "initdb", "-D", str(self.datadir), "-U", SUPERUSER, "--encoding=UTF8",
                "--locale=C", "--auth-local=peer", "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self.secret_file.write_text(password + "\n")
        self.secret_file.chmod(0o600)
        port = self.requested_port or free_port()
        lines = [
            "# written by energymon (app/devservices/embedded_pg.py)",
            "listen_addresses = '127.0.0.1'",
            f"port = {port}",
            "unix_socket_directories = ''",
            "timezone = 'UTC'",
            "max_connections = 200",
            "shared_buffers = '256MB'",
        ]
        if self.preload:
            lines.append(f"shared_preload_libraries = '{','.join(self.preload)}'")
            if "timescaledb" in self.preload:
                lines.append("timescaledb.telemetry_level = off")
        if self.unsafe_fast:
            lines += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        conf = self.datadir / CONF_NAME
        conf.write_text("\n".join(lines) + "\n")
        with open(self.datadir / "postgresql.conf", "a") as handle:
            handle.write(f"\ninclude_if_exists = '{CONF_NAME}'\n")
        if self._run_as is not None:
            os.chown(conf, self._run_as.pw_uid, self._run_as.pw_gid)

    def info(self) -> ServerInfo:
        conf = (self.datadir / CONF_NAME).read_text()
        match = re.search(r"^port = (\d+)$", conf, re.MULTILINE)
        if not match or not self.secret_file.exists():
            raise EmbeddedPostgresError(
                f"{self.datadir} was not created by energymon (no {CONF_NAME} or "
                f"{self.secret_file.name}); remove it or point ENERGYMON_DATA_DIR elsewhere"
            )
        return ServerInfo(int(match.group(1)), self.secret_file.read_text().strip())

    def is_running(self) -> bool:
        if not self.initialised:
            return False
        try:
            self._run("pg_ctl", "-D", str(self.datadir), "status", timeout=30)
        except EmbeddedPostgresError:
            return False
        return True

    def start(self, database: str = "energymon") -> str:
        """Initialise (first time) and start the server; return the URL of ``database``."""
        with self._lock():
            if not self.initialised:
                log.info("initialising embedded PostgreSQL in %s", self.datadir)
                self._init()
            info = self.info()
            if not self.is_running():
                log.info("starting embedded PostgreSQL on 127.0.0.1:%d", info.port)
                self._run(
                    "pg_ctl", "-D", str(self.datadir), "-l", str(self.log_file), "-w",
                    "-t", "60", "start",
                )
            self._wait_ready(info)
            self._ensure_database(info, database)
            return info.url(database)

    def _wait_ready(self, info: ServerInfo, timeout: float = 30) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(info.url(), connect_timeout=5):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise EmbeddedPostgresError(f"embedded PostgreSQL did not accept "
                                                f"connections on port {info.port}: {exc}") from exc
                time.sleep(0.2)

    def _ensure_database(self, info: ServerInfo, database: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(info.url(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))

    def stop(self, mode: str = "fast") -> None:
        with self._lock():
            if self.is_running():
                self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def url(self, database: str = "energymon") -> str:
        return self.info().url(database)
