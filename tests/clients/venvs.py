"""Cached environments for the official Clarifai clients, and a runner for scripts inside them.

Each client gets its own virtual environment (or node_modules folder) under
``<repo>/.cache/client-venvs/<name>`` (override the root with ``VISIONLOOP_CLIENT_CACHE``). It is
built once, then reused: a marker file written after a successful build and import check records
the exact requirement set; an environment without it (half-built, or built from other pins) is
removed and built again. A file lock keeps two pytest processes from building the same one.

Where an environment cannot be built (no package registry, no node), the tests skip with the
reason, unless ``VISIONLOOP_CLIENTS_REQUIRED=1`` turns that into a failure (for CI).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
SCRIPTS = HERE / "scripts"
JS_DIR = HERE / "js"
MARKER = ".visionloop-ready.json"
BUILD_TIMEOUT = 900


def cache_root() -> Path:
    return Path(os.environ.get("VISIONLOOP_CLIENT_CACHE") or REPO_ROOT / ".cache" / "client-venvs")


@dataclasses.dataclass(frozen=True)
class PythonClient:
    """A pinned requirement set and the import that proves it works."""

    name: str
    requirements: tuple[str, ...]
    smoke: str


# The working sets, found by installing the pins on Python 3.11 and importing the clients.
# clarifai 2.6.2 (2019) declares future, requests, configparser<4, jsonschema<3 and grpcio (its
# generated *_pb2_grpc modules import grpc); protobuf 3.17.3 is the last 3.x that still builds
# its descriptors the old way the 2.6.2 generated code needs, and it imports six.
CLARIFAI_PY = PythonClient(
    name="clarifai-2.6.2",
    requirements=(
        "clarifai==2.6.2",
        "protobuf==3.17.3",
        "googleapis-common-protos==1.6.0",
        "future==1.0.0",
        "configparser==3.8.1",
        "jsonschema==2.6.0",
        "requests==2.34.2",
        "six==1.17.0",
        "grpcio==1.85.3",
    ),
    smoke="from clarifai.rest import ClarifaiApp, ApiError",
)

# The wheel's own REST tests (site-packages/tests/rest_tests) import mock, responses and retrying,
# which the client does not declare; they get a venv of their own so the client's stays as users have it.
CLARIFAI_PY_SUITE = PythonClient(
    name="clarifai-2.6.2-suite",
    requirements=(*CLARIFAI_PY.requirements, "mock==5.2.0", "responses==0.25.8", "retrying==1.3.4",
                  "PyYAML==6.0.3"),
    smoke="import tests.rest_tests.test_api, tests.rest_tests.test_models, tests.rest_tests.prepare",
)

# clarifai-grpc's JSON channel imports requests lazily and does not declare it.
CLARIFAI_GRPC = PythonClient(
    name="clarifai-grpc-12.6.0",
    requirements=(
        "clarifai-grpc==12.6.0",
        "protobuf==6.33.6",
        "googleapis-common-protos==1.76.0",
        "grpcio==1.85.3",
        "requests==2.34.2",
    ),
    smoke="from clarifai_grpc.channel.clarifai_channel import ClarifaiChannel; "
          "from clarifai_grpc.grpc.api import service_pb2_grpc; import requests",
)


class Unavailable(Exception):
    """The environment cannot be built here (no registry, no node)."""


def skip_or_fail(reason: str) -> None:
    if os.environ.get("VISIONLOOP_CLIENTS_REQUIRED") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _fingerprint(parts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _is_ready(folder: Path, fingerprint: str) -> bool:
    try:
        return json.loads((folder / MARKER).read_text()).get("fingerprint") == fingerprint
    except (OSError, ValueError):
        return False


def _mark_ready(folder: Path, fingerprint: str, what: Sequence[str]) -> None:
    (folder / MARKER).write_text(json.dumps({"fingerprint": fingerprint, "requirements": list(what)}, indent=1))


def _run_build(cmd: list[str], cwd: Path | None = None) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"{cmd[0]} failed: {exc}") from exc
    if proc.returncode != 0:
        noise = "is ignored: it is neither a file nor a directory"  # this machine's pip config
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if noise not in ln]
        raise Unavailable(f"`{' '.join(cmd[:6])} ...` exited {proc.returncode}:\n" + "\n".join(lines[-15:]))


def python_client(spec: PythonClient) -> Path:
    """The python executable of the client's venv, building the venv if needed."""
    folder = cache_root() / spec.name
    python = folder / "bin" / "python"
    fingerprint = _fingerprint([sys.version.split()[0], *spec.requirements])
    if python.exists() and _is_ready(folder, fingerprint):
        return python
    with _locked(cache_root() / f"{spec.name}.lock"):
        if python.exists() and _is_ready(folder, fingerprint):
            return python
        shutil.rmtree(folder, ignore_errors=True)
        _run_build([sys.executable, "-m", "venv", str(folder)])
        _run_build([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q",
                    *spec.requirements])
        _run_build([str(python), "-c", spec.smoke])
        _mark_ready(folder, fingerprint, spec.requirements)
    return python


def js_client() -> Path:
    """The node_modules folder holding npm ``clarifai`` 2.9.1 (pins in tests/clients/js/package.json)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise Unavailable("node and npm are needed for the npm clarifai client tests and are not on PATH")
    package_json = (JS_DIR / "package.json").read_text()
    folder = cache_root() / "js"
    fingerprint = _fingerprint([package_json])
    if _is_ready(folder, fingerprint):
        return folder / "node_modules"
    with _locked(cache_root() / "js.lock"):
        if not _is_ready(folder, fingerprint):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            (folder / "package.json").write_text(package_json)
            _run_build([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=folder)
            _run_build([node, "-e", "require('clarifai'); require('axios')"], cwd=folder)
            _mark_ready(folder, fingerprint, [package_json])
    return folder / "node_modules"


def client_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment for a client process: no CLARIFAI_* settings and a private HOME, so no
    ~/.clarifai/config or npm/pip user configuration changes what the client does."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLARIFAI_", "VISIONLOOP_", "PYTHON", "NODE_", "API_ENDPOINT"))}
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    env.update(extra)
    return env


def run_json(cmd: Sequence[str], config: dict[str, Any], env: dict[str, str], timeout: float = 180) -> dict:
    """Run a client script with ``config`` as JSON on stdin; it prints one JSON object as its last
    stdout line. Anything else (a crash, a hang, no JSON) fails the test with the output."""
    try:
        proc = subprocess.run(list(cmd), input=json.dumps(config), capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=HERE)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{cmd} did not finish within {timeout}s; stdout so far:\n{exc.stdout}\n"
                             f"stderr:\n{exc.stderr}") from None
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except ValueError:
        result = None
    if proc.returncode != 0 or not isinstance(result, dict):
        raise AssertionError(f"{cmd} exited {proc.returncode} without a JSON result\n"
                             f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
    return result
