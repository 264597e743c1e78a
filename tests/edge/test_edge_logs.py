"""The edge's log lines: ``--log-format json|text`` (app/edge/logs.py), in the contract's JSON
format (app/contract/logs.py), and the lines about an event (queued, sending, delivered,
refused, retrying, dead-lettered) carry its ``event_id`` and the lane's ``camera_id``."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.edge.logs import ENV, configure_logging, default_log_format, stderr_is_journal
from app.edge.outbox import Outbox
from support.logs import json_lines
from tests.edge.conftest import BIN
from tests.edge.fake_central import FakeCentral
from tests.edge.helpers import make_event
from tests.edge.test_uploader_unit import FakeClock, _ack, _uploader

LANE = "lane-a"


def test_json_when_stderr_is_the_journal_text_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = (tmp_path / "stderr").open("w")
    monkeypatch.setattr(sys, "stderr", stream)  # in the test: pytest's capture resets it
    stat = os.fstat(stream.fileno())
    stderr_file = f"{stat.st_dev}:{stat.st_ino}"  # JOURNAL_STREAM's form
    assert stderr_is_journal({"JOURNAL_STREAM": stderr_file})
    assert default_log_format({"JOURNAL_STREAM": stderr_file}) == "json"
    device, inode = stderr_file.split(":")
    # Inherited by a child whose stderr goes elsewhere: not the journal.
    assert default_log_format({"JOURNAL_STREAM": f"{device}:{int(inode) + 1}"}) == "text"
    assert default_log_format({}) == "text"
    assert default_log_format({ENV: "json"}) == "json"
    assert default_log_format({ENV: "text", "JOURNAL_STREAM": stderr_file}) == "text"
    monkeypatch.undo()
    stream.close()


@given(st.text(max_size=40), st.text(max_size=20))
def test_a_garbled_setting_falls_back_without_failing(journal_stream: str, chosen: str) -> None:
    env = {"JOURNAL_STREAM": journal_stream, ENV: chosen}
    assert default_log_format(env) in ("json", "text")
    if chosen.strip().lower() in ("json", "text"):
        assert default_log_format(env) == chosen.strip().lower()


def test_configure_logging_leaves_a_configured_root_alone() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    assert before, "pytest's own handlers"
    configure_logging(level=logging.DEBUG, log_format="json")
    assert root.handlers == before


def test_lines_about_an_event_name_it_and_its_lane(tmp_path: Path) -> None:
    """Queued, sent, refused by central and dead-lettered, retried after a 503, delivered."""
    answers: list[int] = [503]

    def central(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        events = body["events"] if request.url.path.endswith("/batch") else [body]
        if answers:
            return httpx.Response(answers.pop(0), json={"detail": "busy"})
        if any(e["plate"] == "BAD999" for e in events):
            return httpx.Response(422, json={"detail": "no"})
        acks = [_ack(e["event_id"]) for e in events]
        return httpx.Response(200, json={"acks": acks} if len(events) > 1 else acks[0])

    clock = FakeClock()
    events = [make_event(plate=p) for p in ("GOOD01", "BAD999", "GOOD02")]
    with (
        json_lines(service="parking-edge", level=logging.DEBUG) as lines,
        Outbox(tmp_path, max_permanent_attempts=2) as outbox,
    ):
        for event in events:
            outbox.enqueue(event, None)
        uploader = _uploader(outbox, central, clock)
        for _ in range(20):
            clock.now += uploader.step()
            if not outbox.pending_cameras():
                break
        assert [d.event_id for d in outbox.dead_letters()] == [events[1].event_id]

    def outcomes(event_id: object) -> list[str]:
        return [line["outcome"] for line in lines.about(event_id)]

    for good in (events[0], events[2]):
        seen = outcomes(good.event_id)
        assert seen[0] == "queued" and seen[-1] == "delivered", seen
        assert {"sending", "retrying"} <= set(seen), seen
    bad = outcomes(events[1].event_id)
    assert bad[0] == "queued" and bad[-1] == "dead-lettered" and "refused" in bad, bad
    for line in lines.lines:
        if "event_id" in line or "event_ids" in line:
            assert line["camera_id"] == "edge-in", line
            assert line["service"] == "parking-edge"
    delivered = [line for line in lines.lines if line.get("outcome") == "delivered"]
    assert {line["level"] for line in delivered} == {"info"}
    assert all(line["action"] == "open" for line in delivered)
    dead = lines.about(events[1].event_id)[-1]
    assert (dead["level"], dead["status"]) == ("error", 422)


def _simulate(central: FakeCentral, tmp_path: Path, *options: str) -> list[str]:
    return [
        str(BIN / "parking-edge"), *options, "simulate",
        "--central", central.url,
        "--entry-camera", LANE, "--entry-key", "key-a",
        "--rate", "20", "--count", "3", "--no-snapshots", "--no-commands",
        "--exit-when-drained",
        "--data-dir", str(tmp_path / "edge"),
        "--relay-file", str(tmp_path / "relay.jsonl"),
    ]  # fmt: skip


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_parking_edge_writes_json_lines(tmp_path: Path, how: str) -> None:
    central = FakeCentral({LANE: "key-a"})
    try:
        options = ["-v", "--log-format", "json"] if how == "flag" else ["-v"]
        env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        if how == "environment":
            env[ENV] = "json"
        done = subprocess.run(
            _simulate(central, tmp_path, *options),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        central.close()
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(text) for text in done.stderr.splitlines()]  # every line is JSON
    assert {line["service"] for line in lines} == {"parking-edge"}
    assert len(central.events) == 3
    for event in central.events:
        about = [line for line in lines if line.get("event_id") == str(event.event_id)]
        assert [line["outcome"] for line in about] == ["queued", "sending", "delivered"], about
        assert {line["camera_id"] for line in about} == {LANE}


def test_parking_edge_writes_text_when_asked(tmp_path: Path) -> None:
    central = FakeCentral({LANE: "key-a"})
    try:
        done = subprocess.run(
            _simulate(central, tmp_path, "--log-format", "text"),
            env={**os.environ, ENV: "json"},  # the flag wins
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        central.close()
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.strip()
    assert not any(text.startswith("{") for text in done.stderr.splitlines())
    assert "delivered: open" in done.stderr
