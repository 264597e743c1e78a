"""The floors under ingest's CPU per event: what the same machine spends when central does
(almost) nothing, measured the way ``bench/ingest.py`` measures central.

* ``http_floor_cpu_ms_per_request``: uvicorn (httptools, uvloop: as ``parking-central serve``)
  serving a bare ASGI app that reads the event's body and answers a constant acknowledgement
  of the real one's size, driven by bench/ingest.py's own cameras (64 keep-alive connections,
  closed loop). No routing, no middleware, no validation, no database.
* ``http_validate_cpu_ms_per_request``: the same, plus parsing and validating the body with the
  wire contract's ``PlateEvent`` (what any ingest must do before it stores anything).
* ``db_floor_cpu_ms_per_event``: PostgreSQL (``fsync`` on, the migrated schema) running only
  the rows one entry event writes, nothing looked up: ``--batch`` event rows in one multi-row
  INSERT and as many new sessions in another (its triggers keep the lot's counter), one
  transaction at a time (central's group commit has one in flight per worker), driven by
  pgbench. The CPU of the postmaster and its backends per event.

Compare them with bench/ingest.py's ``server_cpu_ms_per_event`` and ``db_cpu_ms_per_event``:
what lies between a floor and the measured figure is what central's code can still win.

    .venv/bin/python bench/ingest_floor.py [--seconds 15] [--cameras 64] [--batch 20]

The last line printed is one JSON object with the three figures, ``batch``, ``cameras``,
``seconds`` and the requests or events each was measured over.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402
    ADMIN_PASSWORD,
    make_cameras,
    pg_env,
    postmaster_pid,
    run_load,
    start_central,
    tree_cpu_s,
)
from support.pg import PgCluster, free_port  # noqa: E402

# The size of a real acknowledgement (an entry opened), so the floor writes as many bytes.
ACK = json.dumps(
    {
        "event_id": "00000000-0000-4000-8000-000000000000",
        "status": "stored",
        "duplicate": False,
        "decision": "open",
        "reason": "entry",
        "session_id": 123456,
        "plate": "51A-123.45",
        "fee": None,
        "received_at": "2026-12-05T08:00:00.000000+00:00",
    }
).encode()


def serve_floor(port: int, validate: bool) -> None:
    """Run the bare ASGI app under uvicorn on ``port`` until killed."""
    import uvicorn

    from app.contract import PlateEvent

    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(ACK)).encode())]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if validate:
            PlateEvent.model_validate_json(body)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": ACK})

    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, server_header=False,
                lifespan="off")  # fmt: skip


def http_floor(cameras: int, seconds: float, *, validate: bool) -> tuple[float, int]:
    port = free_port()
    argv = [sys.executable, __file__, "--serve-floor", str(port)]
    proc = subprocess.Popen([*argv, *(["--validate"] if validate else [])])
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                import socket

                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the floor server did not start") from None
                time.sleep(0.1)
        lanes = [(f"floor-{i:02d}", "unused") for i in range(cameras)]
        asyncio.run(run_load(url, lanes, 2.0))  # warm up
        cpu_0 = tree_cpu_s(proc.pid)
        latencies, errors, _ = asyncio.run(run_load(url, lanes, seconds))
        cpu = tree_cpu_s(proc.pid) - cpu_0
        if errors:
            raise RuntimeError(f"floor server errors: {errors[:5]}")
        return 1000 * cpu / len(latencies), len(latencies)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# One transaction of ``:batch`` entry events: the event rows and the sessions they open.
DB_SCRIPT = """\
BEGIN;
INSERT INTO plate_events (event_id, camera_id, lot_id, direction, captured_at, received_at,
  plate, plate_normalized, confidence, vehicle_type, candidates, session_id, ack, has_snapshot)
SELECT gen_random_uuid(), '{camera}', 'bench', 'entry', now(), now(), p, p, 0.93, 'car',
  '[]', NULL, '{ack}', false
FROM (SELECT upper(substr(md5(random()::text), 1, 8)) AS p FROM generate_series(1, {batch})) s;
INSERT INTO parking_sessions (lot_id, plate_normalized, plate_key, plate_display, vehicle_type,
  status, entry_event_id, entered_at, created_at, paid_amount)
SELECT 'bench', p, p, p, 'car', 'open', gen_random_uuid(), now(), now(), 0
FROM (SELECT upper(substr(md5(random()::text), 1, 8)) AS p FROM generate_series(1, {batch})) s;
COMMIT;
"""


def db_floor(seconds: float, batch: int) -> tuple[float, int]:
    cluster = PgCluster(fsync=True, max_connections=50).init()
    cluster.start()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    central = None
    try:
        pg_url = cluster.create_database("parking")
        port = free_port()
        central = start_central(pg_url, data_dir, port, {})  # migrates; makes the lot, a camera
        camera = make_cameras(f"http://127.0.0.1:{port}", 1, ADMIN_PASSWORD)[0][0]
        central.terminate()
        central.wait(timeout=30)
        central = None
        script = data_dir / "floor.sql"
        script.write_text(DB_SCRIPT.format(camera=camera, batch=batch, ack=ACK.decode()))
        env = pg_env(pg_url)
        pgbench = [str(cluster.bindir / "pgbench"), "-n", "-c", "1", "-f", str(script)]
        subprocess.run([*pgbench, "-T", "2"], env=env, check=True, capture_output=True)  # warm
        db_pid = postmaster_pid(cluster)
        assert db_pid is not None
        cpu_0 = tree_cpu_s(db_pid)
        result = subprocess.run(
            [*pgbench, "-T", str(int(seconds))], env=env, check=True, capture_output=True, text=True
        )
        cpu = tree_cpu_s(db_pid) - cpu_0
        done = next(
            int(line.split(":")[1].split("/")[0])
            for line in result.stdout.splitlines()
            if "number of transactions actually processed" in line
        )
        events = done * batch
        return 1000 * cpu / events, events
    finally:
        if central is not None:
            central.terminate()
            central.wait(timeout=30)
        cluster.destroy()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--cameras", type=int, default=64)
    parser.add_argument("--batch", type=int, default=20, help="events per transaction (DB floor)")
    parser.add_argument("--serve-floor", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--validate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        serve_floor(args.serve_floor, args.validate)
        return 0
    http_ms, http_n = http_floor(args.cameras, args.seconds, validate=False)
    print(f"http floor: {http_ms:.3f} ms CPU per request over {http_n}", file=sys.stderr)
    validate_ms, validate_n = http_floor(args.cameras, args.seconds, validate=True)
    print(f"http + validate: {validate_ms:.3f} ms over {validate_n}", file=sys.stderr)
    db_ms, db_n = db_floor(args.seconds, args.batch)
    print(f"db floor: {db_ms:.3f} ms CPU per event over {db_n}", file=sys.stderr)
    figures = {
        "http_floor_cpu_ms_per_request": round(http_ms, 3),
        "http_validate_cpu_ms_per_request": round(validate_ms, 3),
        "db_floor_cpu_ms_per_event": round(db_ms, 3),
        "floor_sum_ms_per_event": round(validate_ms + db_ms, 3),
        "requests": http_n,
        "events": db_n,
        "batch": args.batch,
        "cameras": args.cameras,
        "seconds": args.seconds,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
