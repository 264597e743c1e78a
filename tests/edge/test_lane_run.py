"""A lane end to end against the real central: folder replay, 422 dead letters, heartbeats."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from app.contract import CameraDirection, normalize_plate
from app.edge.agent import EdgeRuntime, Lane, RuntimeSettings
from app.edge.outbox import DB_NAME, Outbox
from tests.edge.conftest import BIN, Central, NotifySocket, wait_until, write_lane_config
from tests.edge.helpers import jpeg, make_event

IMAGES = 6


def test_run_replays_the_image_folder_into_one_event_per_vehicle(
    central: Central, tmp_path: Path, plates_dir: Path, notify_socket: NotifySocket
) -> None:
    config = write_lane_config(tmp_path, central, plates_dir, source={"limit": IMAGES})
    before = set(central.event_ids("edge-in"))
    run = subprocess.Popen(
        [str(BIN / "parking-edge"), "run", "--config", str(config), "--exit-when-drained"],
        env={**os.environ, "NOTIFY_SOCKET": str(notify_socket.path)},
        stderr=subprocess.PIPE,
        text=True,
    )
    notify_socket.wait_for("READY=1")
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 0, stderr[-3000:]

    truth = [p.read_text().split("\t")[5].strip() for p in sorted(plates_dir.glob("*.txt"))]
    rows = [r for r in central.rows("edge-in") if r[0] not in before]
    assert [normalize_plate(plate) for _, _, plate in rows] == truth[:IMAGES]
    db = sqlite3.connect(central.data_dir / "parking.db")
    ids = [r[0] for r in rows]
    snapshots = {
        str(row[0]).replace("-", "") for row in db.execute("SELECT event_id FROM snapshots")
    }
    assert all(i.hex in snapshots for i in ids), "every event arrived with its JPEG"
    with Outbox(tmp_path / "edge" / "outbox") as outbox:
        actions = outbox.gate_actions()
    assert len(actions) == IMAGES
    assert all(not offline for *_, offline, _ in actions), "central answered every time"


def test_a_422_event_is_dead_lettered_and_the_events_behind_it_are_delivered(
    central: Central, tmp_path: Path
) -> None:
    data_dir = tmp_path / "edge"
    events = [make_event("edge-in", plate=p) for p in ("DL0001", "DL0002", "DL0003")]
    with Outbox(data_dir / "outbox") as outbox:
        for event in events:
            outbox.enqueue(event, jpeg(800))
    # Central will refuse the middle one (422): corrupt it as a buggy reader might have.
    db = sqlite3.connect(data_dir / "outbox" / DB_NAME)
    db.execute(
        "UPDATE events SET payload = replace(payload, 'DL0002', '!!') WHERE event_id = ?",
        (str(events[1].event_id),),
    )
    db.commit()
    db.close()

    settings = RuntimeSettings(
        central_url=central.url, data_dir=data_dir, heartbeat_interval_s=3600
    )
    runtime = EdgeRuntime.build(
        settings, [Lane("edge-in", CameraDirection.ENTRY, central.keys["edge-in"])]
    )
    runtime.start()
    try:
        wait_until(runtime.drained, timeout=20, what="the queue to empty")
        letters = runtime.outbox.dead_letters()
    finally:
        runtime.close()
    assert [(d.event_id, d.last_status) for d in letters] == [(events[1].event_id, 422)]
    stored = set(central.event_ids("edge-in"))
    assert {events[0].event_id, events[2].event_id} <= stored
    assert events[1].event_id not in stored

    cli = [str(BIN / "parking-edge"), "outbox"]
    listing = subprocess.run(
        [*cli, "dead-letters", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert str(events[1].event_id) in listing.stdout
    assert "status=422" in listing.stdout
    subprocess.run(
        [*cli, "requeue", str(events[1].event_id), "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    stats = subprocess.run(
        [*cli, "stats", "--json", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    figures = json.loads(stats.stdout)
    assert (figures["depth"], figures["dead_letters"], figures["delivered_total"]) == (1, 0, 2)


def test_heartbeat_reports_the_outbox_figures_to_central(central: Central, tmp_path: Path) -> None:
    settings = RuntimeSettings(
        central_url=central.url, data_dir=tmp_path, heartbeat_interval_s=3600
    )
    runtime = EdgeRuntime.build(
        settings, [Lane("edge-out", CameraDirection.EXIT, central.keys["edge-out"])]
    )
    try:
        runtime.outbox.enqueue(make_event("edge-out", plate="HB0001"), jpeg(500))
        assert runtime.heartbeats.send_once() == 1
    finally:
        runtime.close()
    db = sqlite3.connect(central.data_dir / "parking.db")
    (health,) = db.execute("SELECT last_health FROM cameras WHERE id = 'edge-out'").fetchone()
    reported = json.loads(health)
    assert reported["outbox_depth"] == 1
    assert reported["captured_total"] == 1
    assert reported["delivered_total"] == 0
    assert reported["agent_version"]
    assert datetime.fromisoformat(reported["sent_at"]) <= datetime.now(UTC)
