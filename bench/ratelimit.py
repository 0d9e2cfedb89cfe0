"""The feedback rate limit shared through the database: what it costs, and how well it holds.

    python bench/ratelimit.py --before REV [--seconds 12] [--rounds 4] [--levels 8,64] [--apps 16]
                              [--accuracy-seconds 10] [--accuracy-rate 20] [--postgres]

- **cost**: a ``visionloop serve`` of this tree and one of ``--before`` (a git revision, extracted
  with ``git archive`` to a temporary folder: the limit kept in each process's memory), each on a
  SQLite database of its own, with the default limit (100 per second per key, 500 per app); the
  load of bench/feedback.py, its clients spread over ``--apps`` apps of one key each, in
  alternating turns, so that both see the same machine. The buckets' bursts and refill are above
  what one server answers here, so no request is refused (every answer must be 200), while each
  key's requests come near its rate, where a lease serves the fewest requests: the figure is what
  leasing tokens from the database costs while requests are let through.
- **accuracy**: two servers of each tree on one database (a SQLite file; with ``--postgres`` also
  an embedded PostgreSQL), clients alternating between them as a load balancer would, one key,
  far above ``--accuracy-rate``, for ``--accuracy-seconds``: the requests accepted against what one
  limit allows (its burst, ten seconds' worth, plus the rate times the seconds).

Writes bench/out/ratelimit.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, free_port  # noqa: E402
from bench.feedback import GENERAL, Run, feedback_body, real_outputs, summary, sustain  # noqa: E402
from bench.keepalive import Connection  # noqa: E402

OUT = ROOT / "bench" / "out" / "ratelimit.json"
QUIET = {"VISIONLOOP_RETRAIN_AFTER_EVENTS": "0"}  # no training job competing for the CPU mid-measurement


def _cli(root: Path, env: dict[str, str], *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "visionloop", *args], capture_output=True, text=True, check=True,
                          cwd=root, env=env).stdout.strip()


@contextlib.contextmanager
def servers(root: Path, data: Path, *, n: int = 1, apps: int = 1, database_url: str = "",
            rate: float | None = None) -> Iterator[tuple[list[str], list[str]]]:
    """``n`` servers of the tree at ``root`` on one database; yields (base URLs, an API key of each app)."""
    env = {**os.environ, **QUIET, "VISIONLOOP_DATA_DIR": str(data), "PYTHONPATH": str(root)}
    if database_url:
        env["VISIONLOOP_DATABASE_URL"] = database_url
    if rate is not None:
        env["VISIONLOOP_FEEDBACK_RATE_LIMIT"] = str(rate)
    for i in range(apps):
        _cli(root, env, "apps", "create", f"bench{i}")
    secrets = [_cli(root, env, "keys", "create", "--app", f"bench{i}") for i in range(apps)]
    procs, bases = [], []
    try:
        for _ in range(n):
            port = free_port()
            procs.append(subprocess.Popen([sys.executable, "-m", "visionloop", "serve", "--port", str(port),
                                           "--log-level", "warning"], cwd=root, env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            bases.append(f"http://127.0.0.1:{port}")
        for base in bases:
            deadline = time.monotonic() + 180
            while True:
                try:
                    if httpx.get(base + "/v2/models", headers={"Authorization": f"Key {secrets[0]}"}).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{base} ({root}) did not start")
                time.sleep(0.2)
        yield bases, secrets
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)


async def spread(base: str, outputs: dict[str, list[str]], clients: int, seconds: float, n: int) -> Run:
    """bench/feedback.py's load, its clients spread over the apps' keys (``outputs``: by key)."""
    keys = list(outputs)
    share = [clients // len(keys) + (i < clients % len(keys)) for i in range(len(keys))]
    runs = await asyncio.gather(*(sustain(base, {"Authorization": f"Key {k}"}, outputs[k], c, seconds, n + i * 10**5)
                                  for i, (k, c) in enumerate(zip(keys, share)) if c))
    return Run([x for r in runs for x in r.latencies], [e for r in runs for e in r.errors],
               max(r.seconds for r in runs), sum(r.warm_ups for r in runs))


def cost(before: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, \
            servers(before, Path(tmp) / "before", apps=args.apps) as (old, old_keys), \
            servers(ROOT, Path(tmp) / "after", apps=args.apps) as (new, new_keys):
        trees = {"before": old[0], "after": new[0]}
        outputs = {name: {k: real_outputs(trees[name], {"Authorization": f"Key {k}"}, n=4) for k in keys}
                   for name, keys in (("before", old_keys), ("after", new_keys))}
        n = 0
        for clients in [int(x) for x in args.levels.split(",")]:
            turns: dict[str, list[Run]] = {"before": [], "after": []}
            for _ in range(args.rounds):
                for name, base in trees.items():
                    turns[name].append(asyncio.run(spread(base, outputs[name], clients,
                                                          args.seconds / args.rounds, n)))
                    n += 10**6
            was, now = summary(turns["before"]), summary(turns["after"])
            row = {"clients": clients, "before": was, "after": now, "ratio": now["rps"] / was["rps"],
                   "load_avg": os.getloadavg()[0]}
            rows.append(row)
            print(f"cost {clients:>3} clients over {args.apps} apps | before {was['rps']:7.1f} req/s p50 "
                  f"{was['p50_ms']:6.1f} ms p99 {was['p99_ms']:6.1f} ms ({was['errors']} errors) | after "
                  f"{now['rps']:7.1f} req/s p50 {now['p50_ms']:6.1f} ms p99 {now['p99_ms']:6.1f} ms ({now['errors']} "
                  f"errors) | after/before {row['ratio']:.3f} (per round {now['rps_per_round']} vs "
                  f"{was['rps_per_round']}) | load {row['load_avg']:.2f}", flush=True)
    return rows


async def flood(bases: list[str], secret: str, output_id: str, clients: int, seconds: float) -> dict[str, int]:
    """``clients`` connections, alternating between the servers, posting for ``seconds``: answers by code."""
    conns = await asyncio.gather(*(Connection.open(bases[i % len(bases)], {"Authorization": f"Key {secret}"})
                                   for i in range(clients)))
    counts: dict[str, int] = {}
    stop = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def client(conn: Connection) -> None:
        while time.perf_counter() < stop:
            code, body = await conn.post(f"/v2/models/{GENERAL}/feedback", feedback_body(output_id, next(counter)))
            what = f"{code}/{json.loads(body)['status']['code']}"
            counts[what] = counts.get(what, 0) + 1

    try:
        await asyncio.gather(*(client(c) for c in conns))
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    return counts


def accuracy(before: Path, database: str, database_url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for name, root in (("before", before), ("after", ROOT)):
        with tempfile.TemporaryDirectory() as tmp, \
                servers(root, Path(tmp) / "data", n=2, database_url=database_url and database_url + f"_{name}",
                        rate=args.accuracy_rate) as (bases, secrets):
            output_id = real_outputs(bases[0], {"Authorization": f"Key {secrets[0]}"}, n=1)[0]
            t0 = time.perf_counter()
            counts = asyncio.run(flood(bases, secrets[0], output_id, 16, args.accuracy_seconds))
            seconds = time.perf_counter() - t0
        allowed = args.accuracy_rate * (10 + seconds)  # a full burst, then the rate
        accepted = counts.get("200/10000", 0)
        row = {"tree": name, "database": database, "servers": 2, "rate": args.accuracy_rate,
               "seconds": round(seconds, 2), "answers": counts, "accepted": accepted, "one_limit_allows": allowed,
               "accepted_over_allowed": accepted / allowed, "load_avg": os.getloadavg()[0]}
        rows.append(row)
        print(f"accuracy {name:>6} on {database:<10}: 2 servers, {args.accuracy_rate:g}/s per key, {seconds:.1f} s: "
              f"{accepted} accepted of {sum(counts.values())} ({counts}); one limit allows {allowed:.0f}: "
              f"{row['accepted_over_allowed']:.3f}x | load {row['load_avg']:.2f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision of the tree to compare with (e.g. the "
                        "last commit before the shared limit)")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--levels", default="8,64")
    parser.add_argument("--apps", type=int, default=16)
    parser.add_argument("--accuracy-seconds", type=float, default=10.0)
    parser.add_argument("--accuracy-rate", type=float, default=20.0)
    parser.add_argument("--postgres", action="store_true", help="also measure the accuracy on PostgreSQL")
    parser.add_argument("--skip-cost", action="store_true")
    args = parser.parse_args()
    result: dict[str, Any] = {"benchmark": "ratelimit", "before": args.before, "cpus": os.cpu_count(),
                              "load_avg_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        before.mkdir()
        archive = subprocess.run(["git", "archive", args.before], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        if not args.skip_cost:
            result["cost"] = cost(before, args)
        result["accuracy"] = accuracy(before, "sqlite", "", args)
        if args.postgres:
            from tests import pgserver

            pg = pgserver.start()
            try:
                pgserver.execute_autocommit(pg, "CREATE DATABASE bench_before", "CREATE DATABASE bench_after")
                result["accuracy"] += accuracy(before, "postgresql", pg.url("bench"), args)
            finally:
                pg.stop()
    result["load_avg_at_end"] = os.getloadavg()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
