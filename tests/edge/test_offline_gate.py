"""Gate decisions without central: the local lists (durable, synced with ETag), the journal of
offline decisions, and the whole path against the real central: central down -> the gate
decides from the lists copy on disk -> central back -> every event and decision arrives once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from app.contract import (
    CameraDirection,
    EdgeLists,
    GateAction,
    GateReason,
    ListedPlate,
    OfflineBasis,
    OfflineDecision,
    PassEntry,
    normalize_plate,
)
from app.edge.config import OfflineAction
from app.edge.decisions import OfflineJournal
from app.edge.gate import GateController, GateOutcome, LoggingRelay, OfflinePolicy
from app.edge.lists import LocalLists
from app.edge.sync import EdgeSync
from support.waiting import wait_until
from tests.edge.conftest import BIN, Central
from tests.edge.helpers import write_edge_toml

NOW = datetime.now(UTC)
PASSWORD = "offline-test-password"  # a throwaway operator of a throwaway central


def sample_lists() -> EdgeLists:
    return EdgeLists(
        lot_id="lot-edge",
        camera_id="edge-in",
        generated_at=NOW,
        deny=[ListedPlate(plate_normalized="51F11111"), ListedPlate(plate_normalized="51F99999")],
        allow=[
            ListedPlate(plate_normalized="51F22222"),
            ListedPlate(plate_normalized="51F99999"),
            ListedPlate(plate_normalized="51F44444", expires_at=NOW - timedelta(minutes=1)),
        ],
        passes=[
            PassEntry(
                plate_normalized="51F33333",
                valid_from=NOW - timedelta(days=1),
                valid_until=NOW + timedelta(days=1),
            ),
            PassEntry(
                plate_normalized="51F55555",
                valid_from=NOW - timedelta(days=30),
                valid_until=NOW - timedelta(days=1),
            ),
        ],
    )


def test_local_lists_decide_deny_first_then_allow_then_pass(tmp_path: Path) -> None:
    lists = LocalLists(tmp_path)
    assert lists.decide("51F-111.11", NOW) is None, "no copy yet: nothing to say"
    lists.replace(sample_lists(), '"v1"')

    def basis(plate: str) -> tuple[GateAction, OfflineBasis] | None:
        found = lists.decide(plate, NOW)
        return (found.action, found.basis) if found else None

    assert basis("51F-111.11") == (GateAction.DENY, OfflineBasis.DENY_LIST)
    assert basis("51F-999.99") == (GateAction.DENY, OfflineBasis.DENY_LIST), "deny wins"
    assert basis("51f 222.22") == (GateAction.OPEN, OfflineBasis.ALLOW_LIST)
    assert basis("51F-333.33") == (GateAction.OPEN, OfflineBasis.SUBSCRIPTION)
    assert basis("51F-444.44") is None, "expired allow entry"
    assert basis("51F-555.55") is None, "expired pass"
    assert basis("30A-000.00") is None
    # look-alikes match, as they do centrally: 5IF is 51F, O is 0
    assert basis("5IF-III.II") == (GateAction.DENY, OfflineBasis.DENY_LIST)
    assert basis("SIF 222.22") == (GateAction.OPEN, OfflineBasis.ALLOW_LIST)
    assert basis("51F-333.3B") is None, "B is 8, not 3"


def test_the_lists_copy_survives_a_restart_and_a_damaged_one_is_ignored(tmp_path: Path) -> None:
    LocalLists(tmp_path).replace(sample_lists(), '"v1"', now=1000.0)
    reopened = LocalLists(tmp_path)
    assert reopened.etag == '"v1"'
    assert reopened.age_s(now=1010.0) == 10.0
    assert reopened.decide("51F-111.11", NOW) is not None
    assert not (tmp_path / "lists.json.tmp").exists()

    (tmp_path / "lists.json").write_text('{"etag": "x", "lists": {"lot_id": 3')
    damaged = LocalLists(tmp_path)
    assert damaged.current is None and damaged.decide("51F-111.11", NOW) is None


def test_offline_journal_keeps_decisions_until_reported_across_reopen(tmp_path: Path) -> None:
    journal = OfflineJournal(tmp_path)
    made = [
        OfflineDecision(
            event_id=uuid4(),
            camera_id="edge-in",
            plate=f"51F-000.0{i}",
            decided_at=NOW,
            action=GateAction.OPEN,
            reason=GateReason.OFFLINE_POLICY,
            basis=OfflineBasis.POLICY,
        )
        for i in range(3)
    ]
    assert all(journal.record(d) for d in made)
    assert not journal.record(made[0]), "one decision per event"
    journal.mark_reported([made[0].event_id])
    journal.close()  # as after a restart

    again = OfflineJournal(tmp_path)
    assert (again.stats().total, again.stats().unreported) == (3, 2)
    assert [d.event_id for d in again.unreported(10)] == [made[1].event_id, made[2].event_id]
    again.close()


def gate_with_lists(
    tmp_path: Path, direction: CameraDirection, policy: OfflinePolicy
) -> tuple[GateController, LoggingRelay, list[GateOutcome]]:
    lists = LocalLists(tmp_path)
    lists.replace(sample_lists(), '"v1"')
    relay, record = LoggingRelay(), list[GateOutcome]()
    gate = GateController(
        relay,
        direction=direction,
        deadline_s=0.1,
        open_pulse_s=1.0,
        policy=policy,
        record=record.append,
        lists=lists,
    )
    return gate, relay, record


def test_silent_central_the_gate_follows_the_local_lists_and_the_policy_for_the_rest(
    tmp_path: Path,
) -> None:
    # An entry whose policy keeps unknown vehicles out while central is unreachable.
    gate, relay, record = gate_with_lists(
        tmp_path, CameraDirection.ENTRY, OfflinePolicy(entry=OfflineAction.DENY)
    )
    outcomes = {
        plate: gate.handle(uuid4(), Future(), lambda: None, plate).result(timeout=5)
        for plate in ("51F-111.11", "51F-222.22", "51F-333.33", "30A-000.00")
    }
    gate.close()
    summary = {p: (o.action, o.reason, o.basis, o.offline) for p, o in outcomes.items()}
    assert summary == {
        "51F-111.11": (GateAction.DENY, GateReason.DENY_LISTED, OfflineBasis.DENY_LIST, True),
        "51F-222.22": (GateAction.OPEN, GateReason.ALLOW_LISTED, OfflineBasis.ALLOW_LIST, True),
        "51F-333.33": (GateAction.OPEN, GateReason.SUBSCRIBER, OfflineBasis.SUBSCRIPTION, True),
        "30A-000.00": (GateAction.DENY, GateReason.OFFLINE_POLICY, OfflineBasis.POLICY, True),
    }
    assert relay.pulses == [1.0, 1.0], "only the allow-listed and the subscriber went in"
    assert len(record) == 4


def test_a_deny_listed_vehicle_held_at_an_exit_is_flagged(tmp_path: Path) -> None:
    gate, relay, _ = gate_with_lists(tmp_path, CameraDirection.EXIT, OfflinePolicy())
    held = gate.handle(uuid4(), Future(), lambda: None, "51F-111.11").result(timeout=5)
    unknown = gate.handle(uuid4(), Future(), lambda: None, "30A-000.00").result(timeout=5)
    gate.close()
    assert (held.action, held.flagged) == (GateAction.DENY, True)
    assert (unknown.action, unknown.basis, unknown.flagged) == (
        GateAction.OPEN,
        OfflineBasis.POLICY,
        True,
    )
    assert relay.pulses == [1.0]


# -- against the real central -----------------------------------------------------------------


def operator_token(central: Central) -> dict[str, str]:
    return central.admin_headers("offline-admin", PASSWORD)


def test_sync_uses_the_etag_and_stores_what_changed(central: Central, tmp_path: Path) -> None:
    admin = operator_token(central)
    lists = LocalLists(tmp_path / "lists")
    journal = OfflineJournal(tmp_path / "gate")
    sync = EdgeSync(central.url, central.keys["edge-in"], lists, journal)
    try:
        sync.sync_lists()
        sync.sync_lists()
        assert (sync.syncs_ok, sync.not_modified) == (1, 1), "the second GET was a 304"
        before = lists.etag
        added = httpx.post(
            central.url + "/api/v1/lists",
            json={"plate": "SY-0001", "kind": "deny", "lot_id": "lot-edge"},
            headers=admin,
            timeout=10,
        )
        assert added.status_code == 201, added.text
        sync.sync_lists()
        assert lists.etag != before and sync.syncs_ok == 2
        stored = LocalLists(tmp_path / "lists").current  # read back from disk
        assert stored is not None and stored.etag == lists.etag
        assert "SY0001" in {e.plate_normalized for e in stored.lists.deny}
    finally:
        sync.stop()
        journal.close()


IMAGES = 6


@pytest.mark.timeout(180)
def test_central_down_the_lane_decides_from_its_lists_then_everything_arrives_once(
    central: Central, tmp_path: Path, plates_dir: Path
) -> None:
    truth = [p.read_text().split("\t")[5].strip() for p in sorted(plates_dir.glob("*.txt"))]
    denied, allowed, subscriber = truth[0], truth[1], truth[2]
    admin = operator_token(central)
    for body in (
        {"plate": denied, "kind": "deny", "lot_id": "lot-edge"},
        {"plate": allowed, "kind": "allow"},
    ):
        response = httpx.post(central.url + "/api/v1/lists", json=body, headers=admin, timeout=10)
        assert response.status_code == 201, response.text
    response = httpx.post(
        central.url + "/api/v1/subscriptions",
        json={
            "plate": subscriber,
            "lot_id": "lot-edge",
            "valid_from": (NOW - timedelta(days=1)).isoformat(),
            "valid_until": (NOW + timedelta(days=30)).isoformat(),
        },
        headers=admin,
        timeout=10,
    )
    assert response.status_code == 201, response.text

    data = tmp_path / "edge"
    # One earlier run synced the lists to disk; then central became unreachable.
    lists, journal = LocalLists(data / "lists"), OfflineJournal(data / "gate")
    EdgeSync(central.url, central.keys["edge-in"], lists, journal).sync_lists()
    journal.close()
    before = set(central.event_ids("edge-in"))
    central.stop(kill=True)

    config = write_edge_toml(
        tmp_path,
        camera={"api_key": central.keys["edge-in"]},
        central={"url": central.url, "connect_timeout_s": 0.5},
        source={"path": plates_dir, "fps": 0, "frames_per_image": 3, "limit": IMAGES},
        aggregate={"cooldown_s": 0},
        outbox={"dir": data, "snapshot_max_side": 320},
        uploader={"backoff_cap_s": 1.0, "breaker_reset_s": 1.0},
        gate={"deadline_s": 0.5, "offline_entry": "deny"},
        lists={"sync_interval_s": 1.0, "retry_cap_s": 1.0},
        metrics={"enabled": False},
    )
    log = (tmp_path / "edge.log").open("w")
    run = subprocess.Popen(
        [str(BIN / "parking-edge"), "run", "--config", str(config), "--exit-when-drained"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def decisions() -> list[tuple[str, str]]:
            db = sqlite3.connect(data / "gate" / "offline.db")
            try:
                rows = db.execute("SELECT payload FROM offline_decisions ORDER BY seq").fetchall()
            finally:
                db.close()
            made = [OfflineDecision.model_validate_json(r[0]) for r in rows]
            return [(normalize_plate(d.plate), d.basis.value) for d in made]

        wait_until(
            lambda: (data / "gate" / "offline.db").exists() and len(decisions()) == IMAGES,
            timeout=60,
            what="an offline decision for every vehicle",
        )
        assert dict(decisions()) == {
            normalize_plate(denied): "deny_list",
            normalize_plate(allowed): "allow_list",
            normalize_plate(subscriber): "subscription",
            **{normalize_plate(p): "policy" for p in truth[3:IMAGES]},
        }
        central.start()
        assert run.wait(timeout=90) == 0, "the agent exits once everything is delivered"
    finally:
        if run.poll() is None:
            run.kill()
        log.close()
    output = (tmp_path / "edge.log").read_text()
    assert output.count("relay pulse") == 2, "only the allow-listed and the subscriber opened"

    new = [i for i in central.event_ids("edge-in") if i not in before]
    assert len(new) == IMAGES == len(set(new)), "every event once"
    summary = httpx.get(
        central.url + "/api/v1/edge/offline-decisions",
        params={"camera_id": "edge-in"},
        headers=admin,
        timeout=10,
    ).json()
    items = [i for i in summary["items"] if i["event_id"] in {str(n) for n in new}]
    assert len(items) == IMAGES
    assert all(i["event_received"] for i in items)
    assert {i["basis"] for i in items} == {"deny_list", "allow_list", "subscription", "policy"}


def test_cli_check_config_and_offline_figures(tmp_path: Path) -> None:
    config = write_edge_toml(
        tmp_path,
        camera={"api_key": None, "api_key_file": tmp_path / "key"},
        central={"url": "https://vip.example"},
        source={"path": tmp_path},
        outbox={"dir": tmp_path / "data"},
    )
    cli = [str(BIN / "parking-edge")]
    ok = subprocess.run(
        [*cli, "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "camera edge-in (entry)" in ok.stdout
    config.write_text(config.read_text() + "[gate]\ndeadline_s = -1\n")
    bad = subprocess.run(
        [*cli, "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "gate.deadline_s" in bad.stderr

    LocalLists(tmp_path / "data" / "lists").replace(sample_lists(), '"v9"')
    journal = OfflineJournal(tmp_path / "data" / "gate")
    journal.record(
        OfflineDecision(
            event_id=uuid4(),
            camera_id="edge-in",
            plate="51F-111.11",
            decided_at=NOW,
            action=GateAction.DENY,
            reason=GateReason.DENY_LISTED,
            basis=OfflineBasis.DENY_LIST,
        )
    )
    journal.close()
    figures = subprocess.run(
        [*cli, "offline", "--json", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    data = json.loads(figures.stdout)
    assert (data["decisions"], data["unreported"], data["lists_etag"]) == (1, 1, '"v9"')
    assert (data["allow"], data["deny"], data["passes"]) == (3, 2, 2)
