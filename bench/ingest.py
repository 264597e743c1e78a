"""Ingest throughput, latency and CPU per event, against its ceiling on the same PostgreSQL.

N simulated cameras send plate events for T seconds to a running central, through HTTP,
exactly as edge agents do (one keep-alive connection each, one request at a time):

* closed loop (default): the next event leaves when the previous answer arrived;
* open loop (``--rate R``): each camera's events fall due as a Poisson process of R events/s
  (seeded by ``--seed``), whatever the server does; an event due while the previous one is still
  in flight waits for it, and its latency counts from the instant it fell due, not from its
  send, so a server that falls behind shows in the latency (no coordinated omission).

In the same run (PostgreSQL only), pgbench measures the ceiling: single-row INSERT commits on
the same PostgreSQL at the same concurrency.

Without --url/--pg-url the script builds everything itself: a throwaway PostgreSQL cluster with
fsync on (as in production) or, with ``--database sqlite``, a SQLite file, and
``parking-central serve`` on it.

The last line printed is one JSON object: events_per_s, p50_ms, p99_ms, ceiling_per_s, ratio,
cameras, seconds, events, errors, database, rate_per_camera, offered_per_s, and the CPU per
event of the central server (all its processes; SQLite's work is in it),
the PostgreSQL server (postmaster and backends; 0 on SQLite) and this load client:
server_cpu_ms_per_event, db_cpu_ms_per_event, cpu_ms_per_event (server + db),
client_cpu_ms_per_event; analyzed (the run ANALYZEd its own PostgreSQL after the warm-up, as
autovacuum does in production within a minute of the first writes; --no-analyze keeps the
empty tables' statistics).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from support.pg import PgCluster, free_port  # noqa: E402

ADMIN_PASSWORD = "bench-admin-password"  # throwaway cluster made by this run


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its children (``serve --workers N`` forks workers)."""
    total = process_cpu_s(pid)
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # exited meanwhile
                total += tree_cpu_s(int(child))
    return total


def postmaster_pid(cluster: PgCluster | None) -> int | None:
    """The PostgreSQL server's pid, when this run started the cluster (its backends are
    the postmaster's children)."""
    if cluster is None:
        return None
    return int((cluster.datadir / "postmaster.pid").read_text().split()[0])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Lane:
    """One camera's keep-alive HTTP/1.1 connection, written by hand.

    A load generator must cost far less than the server it measures: a general client
    (httpx) spent more CPU per request than central itself on this 2-core machine, so the
    figures measured the client. Requests here are a few bytes formatted into a buffer.
    """

    def __init__(self, host: str, port: int, camera_id: str, key: str) -> None:
        self.host, self.port, self.camera_id, self.key = host, port, camera_id, key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.sent = 0

    async def post_event(self) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.sent += 1
        n = self.sent
        body = json.dumps({
            "event_id": str(uuid.uuid4()),
            "camera_id": self.camera_id,
            "captured_at": datetime.now(UTC).isoformat(),
            "plate": f"{self.camera_id[-2:]}A-{n // 100 % 1000:03d}.{n % 100:02d}",
            "confidence": 0.93,
            "vehicle_type": "car",
        }).encode()  # fmt: skip
        head = (
            f"POST /api/v1/events HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"X-API-Key: {self.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def send_one(lane: Lane, errors: list[str]) -> bool:
    """One event; False (the error noted, a broken connection dropped) unless central stored it."""
    try:
        status = await lane.post_event()
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as error:
        errors.append(type(error).__name__)
        lane.close()
        lane.writer = None
        return False
    if status != 200:
        errors.append(str(status))
        return False
    return True


async def camera_loop(
    lane: Lane, stop_at: float, latencies: list[float], errors: list[str]
) -> None:
    while time.perf_counter() < stop_at:
        started = time.perf_counter()
        if await send_one(lane, errors):
            latencies.append(time.perf_counter() - started)


async def camera_open_loop(
    lane: Lane,
    stop_at: float,
    rate: float,
    rng: random.Random,
    latencies: list[float],
    errors: list[str],
) -> None:
    """Poisson arrivals at ``rate`` per second; latency from each event's due instant."""
    due = time.perf_counter()
    while True:
        due += rng.expovariate(rate)
        if due >= stop_at:
            return
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if await send_one(lane, errors):
            latencies.append(time.perf_counter() - due)


async def run_load(
    url: str,
    cameras: list[tuple[str, str]],
    seconds: float,
    *,
    rate: float | None = None,
    seed: int = 0,
) -> tuple[list[float], list[str], float]:
    parsed = httpx.URL(url)
    lanes = [Lane(parsed.host, parsed.port or 80, cid, key) for cid, key in cameras]
    latencies: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    stop_at = start + seconds
    if rate is None:
        loops = [camera_loop(lane, stop_at, latencies, errors) for lane in lanes]
    else:
        loops = [
            camera_open_loop(lane, stop_at, rate, random.Random(seed * 1_000_003 + i), latencies,
                             errors)
            for i, lane in enumerate(lanes)
        ]  # fmt: skip
    await asyncio.gather(*loops)
    elapsed = time.perf_counter() - start
    for lane in lanes:
        lane.close()
    return latencies, errors, elapsed


def pg_env(dsn_url: str) -> dict[str, str]:
    """The environment that points libpq's tools (psql, pgbench) at the URL's database."""
    from sqlalchemy.engine import make_url

    url = make_url(dsn_url)
    env = {
        **os.environ,
        "PGHOST": url.host or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "PGUSER": url.username or "postgres",
        "PGDATABASE": url.database or "postgres",
    }
    if url.password:
        env["PGPASSWORD"] = url.password
    return env


def pgbench_ceiling(cluster: PgCluster | None, dsn_url: str, clients: int, seconds: int) -> float:
    """Single-row INSERT commits per second at the given concurrency, by pgbench."""
    bindir = Path(sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))[-1]).parent
    env = pg_env(dsn_url)
    psql = [str(bindir / "psql"), "-q", "-c"]
    subprocess.run(
        [
            *psql,
            "CREATE TABLE IF NOT EXISTS bench_ceiling "
            "(id bigserial primary key, camera text, plate text, at timestamptz)",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    script = Path(tempfile.mkdtemp()) / "insert.sql"
    script.write_text(
        "INSERT INTO bench_ceiling (camera, plate, at) VALUES ('cam', '51F12345', now());\n"
    )
    script.chmod(0o644)
    script.parent.chmod(0o755)
    result = subprocess.run(
        [
            str(bindir / "pgbench"),
            "-n",
            "-c",
            str(clients),
            "-j",
            str(min(clients, 4)),
            "-T",
            str(seconds),
            "-f",
            str(script),
        ],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    subprocess.run([*psql, "DROP TABLE bench_ceiling"], check=True, env=env, capture_output=True)
    match = re.search(r"tps = ([0-9.]+)", result.stdout)
    if not match:
        raise RuntimeError(f"pgbench printed no tps:\n{result.stdout}\n{result.stderr}")
    return float(match.group(1))


def start_central(
    db_url: str, data_dir: Path, port: int, workers_env: dict[str, str], workers: int = 1
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PARKING_DATABASE_URL": db_url,
        "PARKING_DATA_DIR": str(data_dir),
        "PARKING_LOG_LEVEL": "WARNING",
        "PARKING_CAMERA_RATE_PER_S": "100000",
        "PARKING_CAMERA_BURST": "100000",
        **workers_env,
    }
    bindir = Path(sys.executable).parent
    subprocess.run(
        [str(bindir / "parking-central"), "migrate"], env=env, check=True, capture_output=True
    )
    subprocess.run(
        [str(bindir / "parking-central"), "create-user", "bench-admin", "--role", "admin"],
        env=env,
        input=f"{ADMIN_PASSWORD}\n".encode(),
        check=False,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [
            str(bindir / "parking-central"),
            "serve",
            "--port",
            str(port),
            *(["--workers", str(workers)] if workers > 1 else []),
        ],
        env=env,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health/ready").status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("central did not become ready")
        time.sleep(0.2)


def make_cameras(url: str, count: int, password: str) -> list[tuple[str, str]]:
    token = httpx.post(
        f"{url}/api/v1/auth/token", data={"username": "bench-admin", "password": password}
    ).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    httpx.post(f"{url}/api/v1/lots", json={"id": "bench", "capacity": 1_000_000}, headers=headers)
    run = uuid.uuid4().hex[:6]
    cameras = []
    for i in range(count):
        camera_id = f"bench-{run}-{i:02d}"
        made = httpx.post(
            f"{url}/api/v1/cameras",
            headers=headers,
            json={"id": camera_id, "lot_id": "bench", "direction": "entry"},
        )
        made.raise_for_status()
        cameras.append((camera_id, made.json()["api_key"]))
    return cameras


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cameras", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--url", help="a running central (needs --pg-url and --admin-password)")
    parser.add_argument("--pg-url", help="the PostgreSQL that central uses, for the ceiling")
    parser.add_argument("--admin-password", default=ADMIN_PASSWORD)
    parser.add_argument(
        "--workers", type=int, default=1, help="central worker processes (serve --workers)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        help="open loop: each camera's events fall due as Poisson arrivals at RATE per second",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the open loop's arrivals")
    parser.add_argument(
        "--database",
        choices=["postgresql", "sqlite"],
        default="postgresql",
        help="what the central this run starts uses (no ceiling on sqlite)",
    )
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="keep the statistics of the empty tables (no ANALYZE after the warm-up)",
    )
    args = parser.parse_args()
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be > 0")
    if args.database == "sqlite" and args.url:
        parser.error("--database sqlite starts its own central; leave out --url")

    cluster: PgCluster | None = None
    central: subprocess.Popen[bytes] | None = None
    data_dir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        pg_url: str | None
        if args.url:
            if not args.pg_url:
                parser.error("--url needs --pg-url (the ceiling is measured on that database)")
            url, pg_url = args.url.rstrip("/"), args.pg_url
        elif args.database == "sqlite":
            pg_url = None
            port = free_port()
            sqlite_url = f"sqlite:///{data_dir / 'parking.db'}"
            central = start_central(sqlite_url, data_dir, port, {}, args.workers)
            url = f"http://127.0.0.1:{port}"
        else:
            cluster = PgCluster(fsync=True, max_connections=300).init()
            cluster.start()
            pg_url = cluster.create_database("parking")
            port = free_port()
            central = start_central(pg_url, data_dir, port, {}, args.workers)
            url = f"http://127.0.0.1:{port}"
        cameras = make_cameras(url, args.cameras, args.admin_password)
        if args.warmup:
            asyncio.run(run_load(url, cameras, args.warmup, rate=args.rate, seed=args.seed + 1))
        if cluster is not None and not args.no_analyze:
            # What autovacuum does within a minute of the first writes in production: plans
            # prepared on the empty tables (a sequential scan of every open session per look-up)
            # are replaced by plans for the tables as they are.
            subprocess.run(
                [str(cluster.bindir / "psql"), cluster.dsn("parking"), "-qc", "ANALYZE"],
                check=True,
                capture_output=True,
            )
        db_pid = postmaster_pid(cluster)
        server_cpu_0 = tree_cpu_s(central.pid) if central else 0.0
        db_cpu_0 = tree_cpu_s(db_pid) if db_pid else 0.0
        client_cpu_0 = time.process_time()
        latencies, errors, elapsed = asyncio.run(
            run_load(url, cameras, args.seconds, rate=args.rate, seed=args.seed)
        )
        server_cpu = (tree_cpu_s(central.pid) - server_cpu_0) if central else None
        db_cpu = (tree_cpu_s(db_pid) - db_cpu_0) if db_pid else None
        client_cpu = time.process_time() - client_cpu_0
        if db_pid is None and not args.url:
            db_cpu = 0.0  # SQLite: the database's work is the server process's own
        ceiling = (
            pgbench_ceiling(cluster, pg_url, args.cameras, int(args.seconds)) if pg_url else None
        )
    finally:
        if central is not None:
            central.terminate()
            central.wait(timeout=30)
        if cluster is not None:
            cluster.destroy()
        shutil.rmtree(data_dir, ignore_errors=True)

    events_per_s = len(latencies) / elapsed
    n = len(latencies)

    def per_event(cpu_s: float | None) -> float | None:
        return round(1000 * cpu_s / n, 3) if cpu_s is not None and n else None

    figures: dict[str, Any] = {
        "events_per_s": round(events_per_s, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2) if latencies else None,
        "ceiling_per_s": round(ceiling, 1) if ceiling else None,
        "ratio": round(events_per_s / ceiling, 3) if ceiling else None,
        "cameras": args.cameras,
        "seconds": args.seconds,
        "events": len(latencies),
        "errors": len(errors),
        "database": "sqlite" if args.database == "sqlite" else "postgresql",
        "rate_per_camera": args.rate,
        "offered_per_s": round(args.rate * args.cameras, 1) if args.rate else None,
        # Where the time goes: CPU per event in the central processes, PostgreSQL and this
        # load client (all sharing the machine's cores).
        "cpu_ms_per_event": (
            per_event(server_cpu + db_cpu)
            if server_cpu is not None and db_cpu is not None
            else None
        ),
        "server_cpu_ms_per_event": per_event(server_cpu),
        "db_cpu_ms_per_event": per_event(db_cpu),
        "client_cpu_ms_per_event": per_event(client_cpu),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "workers": args.workers,
        "analyzed": cluster is not None and not args.no_analyze,
    }
    offered = f" of {figures['offered_per_s']} offered" if args.rate else ""
    print(
        f"ingest ({figures['database']}): {figures['events_per_s']} events/s{offered}, "
        f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms over {args.cameras} cameras; "
        f"CPU ms/event server {figures['server_cpu_ms_per_event']} + db "
        f"{figures['db_cpu_ms_per_event']}; ceiling (pgbench single-row INSERT commits, same "
        f"concurrency) {figures['ceiling_per_s']}/s; ratio {figures['ratio']}",
        file=sys.stderr,
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
