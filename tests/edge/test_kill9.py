"""kill -9 the edge 20 times while it produces, restart central twice: nothing lost or doubled."""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path

from app.edge.outbox import Outbox
from tests.edge.conftest import BIN, Central, NotifySocket


def test_kill_9_twenty_times_and_two_central_restarts_lose_and_double_nothing(
    central: Central, tmp_path: Path, notify_socket: NotifySocket
) -> None:
    data_dir = tmp_path / "edge"
    command = [
        str(BIN / "parking-edge"), "simulate",
        "--central", central.url,
        "--entry-camera", "edge-in", "--entry-key", central.keys["edge-in"],
        "--exit-camera", "edge-out", "--exit-key", central.keys["edge-out"],
        "--rate", "120", "--dwell", "0.1", "0.6",
        "--data-dir", str(data_dir),
        "--backoff-cap-s", "0.3", "--breaker-reset-s", "0.3",
    ]  # fmt: skip
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_socket.path)}
    rng = random.Random(20)
    for round_ in range(20):
        edge = subprocess.Popen(
            [*command, "--seed", str(round_)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            notify_socket.wait_for("READY=1")
            time.sleep(rng.uniform(0.05, 0.7))  # a random point in its work
            if round_ in (7, 14):
                central.restart()  # the edge keeps producing while central is away
        finally:
            edge.kill()
            edge.wait(timeout=10)
        assert edge.returncode == -9

    # One clean run makes nothing new and exits once everything is delivered.
    final = subprocess.run(
        [*command, "--count", "0", "--exit-when-drained"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert final.returncode == 0, final.stderr[-2000:]

    with Outbox(data_dir / "outbox") as outbox:
        produced = outbox.delivered_ids() | set(outbox.pending_ids())
        stats = outbox.stats()
    assert stats.depth == 0
    assert stats.dead_letters == 0
    assert stats.refused_total == 0
    assert stats.captured_total == len(produced) > 200, "every committed event is accounted for"
    stored = central.event_ids("edge-in") + central.event_ids("edge-out")
    assert len(stored) == len(set(stored)), "central holds no event twice"
    missing, extra = produced - set(stored), set(stored) - produced
    assert (len(missing), len(extra)) == (0, 0), f"missing {missing}, unexpected {extra}"


def test_sigterm_stops_cleanly_with_the_outbox_closed(
    central: Central, tmp_path: Path, notify_socket: NotifySocket
) -> None:
    data_dir = tmp_path / "edge"
    edge = subprocess.Popen(
        [
            str(BIN / "parking-edge"),
            "simulate",
            "--central",
            central.url,
            "--entry-camera",
            "edge-in",
            "--entry-key",
            central.keys["edge-in"],
            "--rate",
            "50",
            "--data-dir",
            str(data_dir),
        ],
        env={**os.environ, "NOTIFY_SOCKET": str(notify_socket.path)},
        stderr=subprocess.PIPE,
        text=True,
    )
    notify_socket.wait_for("READY=1")
    time.sleep(0.5)  # let it make a few events
    edge.terminate()
    _, stderr = edge.communicate(timeout=20)
    assert edge.returncode == 0, stderr[-2000:]
    notify_socket.wait_for("STOPPING=1", timeout=5)
    wal = data_dir / "outbox" / "outbox.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0, "the WAL was checkpointed on close"
    with Outbox(data_dir / "outbox") as outbox:
        assert outbox.stats().captured_total > 0
