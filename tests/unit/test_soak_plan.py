"""The soak's nemesis schedule and its resource growth figure (support/lab_soak.py), without a lab:
the same seed gives the same faults, every tier takes only its own kinds, and a restart does not
count as growth."""

from __future__ import annotations

import random

import pytest

from support.lab_edge import EdgeHost
from support.lab_soak import (
    KINDS,
    OFFLINE_OPEN,
    PULSE,
    TIERS,
    Lab,
    Sample,
    growth_per_hour,
    per_host_growth,
    plan,
    spared,
    worst_last_hour,
)
from support.lab_tier import Tier


def lab() -> Lab:
    tier = Tier(
        vip="10.77.0.30",
        server_name="parking.lab",
        active="central1",
        centrals={"central1": "10.77.0.21", "central2": "10.77.0.22"},
        lbs={"lb1": "10.77.0.31", "lb2": "10.77.0.32"},
        db_hosts=["10.77.0.11", "10.77.0.12", "10.77.0.13"],
    )
    dbs = {"db1": "10.77.0.11", "db2": "10.77.0.12", "db3": "10.77.0.13"}
    return Lab(tier, dbs, {e: EdgeHost(e) for e in ("edge1", "edge2")}, "mon1")


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    kinds = sorted(KINDS)
    first = plan(random.Random(7), lab(), 3600, (15, 45), kinds)
    again = plan(random.Random(7), lab(), 3600, (15, 45), kinds)
    other = plan(random.Random(8), lab(), 3600, (15, 45), kinds)
    assert first == again
    assert first != other
    assert len(first) >= 60, "an hour at 15-45 s gaps plans well over 60 faults"
    assert {p.kind for p in first} == set(KINDS), "an hour draws every kind"


def test_every_fault_targets_a_host_of_its_own_tier_within_the_window() -> None:
    the_lab = lab()
    for p in plan(random.Random(3), the_lab, 1800, (15, 45), sorted(KINDS)):
        assert 0 < p.at_s < 1800
        assert p.tier in TIERS
        low, high = KINDS[p.kind][1]
        assert low <= p.hold_s <= high
        if p.kind == "slow-db":
            assert (p.target, p.tier) == ("leader", "db")
        elif p.kind == "cut-lb-lb":
            assert (p.target, p.tier) == ("lb1+lb2", "lb")
        else:
            assert p.target in the_lab.hosts_of(p.tier), p
            assert the_lab.tier_of(p.target) == p.tier, p


def test_growth_is_fitted_within_each_process_lifetime() -> None:
    # 100 MB rising 1 MB per minute, killed at 10 min, back at 40 MB rising the same: 60 MB/h,
    # not the fall across the restart.
    samples = [Sample(m * 60.0, "central1", 11, (100 + m) * 1024, 20) for m in range(10)]
    samples += [Sample(m * 60.0, "central1", 12, (40 + m - 10) * 1024, 20) for m in range(10, 20)]
    rate = growth_per_hour(samples, lambda s: s.rss_kb / 1024)
    assert rate is not None and abs(rate - 60.0) < 1e-6
    assert growth_per_hour(samples, lambda s: s.fds) == 0.0
    assert growth_per_hour(samples[:1], lambda s: s.fds) is None


def test_the_pulse_and_offline_lines_are_read_as_the_agent_writes_them() -> None:
    # The messages as app/edge/gate.py formats them, inside the agent's JSON log line.
    cid = "0193a6d2-7c1e-7b3a-9f10-2a4b6c8d0e1f"
    line = (
        '{"level": "info", "logger": "app.edge.gate", "message": '
        f'"gate: relay pulse 1.0s (logging driver) command:{cid}"}}'
    )
    m = PULSE.search(line)
    assert m is not None and (m.group(1), m.group(2)) == ("command", cid)
    assert PULSE.search("gate: relay pulse 1.0s (logging driver)") is None, "no cause, no pulse"
    offline = (
        f"gate: central silent for {cid} (no answer within deadline); "
        "offline decision by allow_list: open (flagged)"
    )
    m = OFFLINE_OPEN.search(offline)
    assert m is not None and m.group(1) == cid
    assert OFFLINE_OPEN.search(offline.replace(": open", ": deny")) is None


def test_the_settled_growth_leaves_each_lifetimes_warm_up_out() -> None:
    # 20 MB in the first 10 minutes (caches filling), then flat for 50: the pooled slope sees
    # growth, the settled one none; a process that keeps growing after its warm-up still shows.
    warm = [Sample(m * 60.0, "edge1", 7, (100 + min(m, 10) * 2) * 1024, 17) for m in range(60)]
    assert (growth_per_hour(warm, lambda s: s.rss_kb / 1024) or 0) > 5
    assert growth_per_hour(warm, lambda s: s.rss_kb / 1024, 600) == 0.0
    leak = [Sample(m * 60.0, "edge1", 8, (100 + m) * 1024, 17) for m in range(60)]
    rate = growth_per_hour(leak, lambda s: s.rss_kb / 1024, 600)
    assert rate is not None and abs(rate - 60.0) < 1e-6
    assert growth_per_hour(warm[:10], lambda s: s.rss_kb, 600) is None, "no settled samples"


def test_spared_tiers_processes_are_never_restarted_and_the_plain_plan_is_unchanged() -> None:
    the_lab = lab()
    kinds = sorted(KINDS)
    spared = plan(random.Random(5), the_lab, 3600, (15, 45), kinds, ("central", "edge"))
    assert len(spared) >= 60
    for p in spared:
        assert p.kind not in ("kill9-central", "kill9-edge"), p
        if p.kind == "crash-host":
            assert p.tier not in ("central", "edge"), p
    assert {"cut-edge", "cut-central-db", "clock-step-edge"} <= {p.kind for p in spared}
    assert plan(random.Random(5), the_lab, 3600, (15, 45), kinds, ()) == plan(
        random.Random(5), the_lab, 3600, (15, 45), kinds
    )


def test_a_spared_host_keeps_its_process_while_its_tier_still_takes_the_kills() -> None:
    the_lab = lab()
    kinds = sorted(KINDS)
    spare = spared(the_lab, "central1, edge1")
    assert spare == ("central1", "edge1")
    schedule = plan(random.Random(11), the_lab, 7200, (15, 45), kinds, spare)
    assert len(schedule) >= 60
    kills = {(p.kind, p.target) for p in schedule if p.kind in ("kill9-central", "kill9-edge")}
    assert kills == {("kill9-central", "central2"), ("kill9-edge", "edge2")}
    assert not any(p.kind == "crash-host" and p.target in spare for p in schedule)
    # The spared hosts still take the faults that do not restart their process.
    assert {"cut-central-db", "disk-full-edge", "clock-step-edge", "cut-edge"} <= {
        p.kind for p in schedule if p.target in spare
    }


def test_spare_names_tiers_or_their_hosts_and_refuses_anything_else() -> None:
    the_lab = lab()
    assert spared(the_lab, "") == ()
    assert spared(the_lab, "central,edge") == ("central", "edge")
    assert spared(the_lab, "edge1,edge2") == ("edge",), "every host of a tier spares the tier"
    for wrong in ("db1", "lb", "central3", "central1,mon1"):
        with pytest.raises(SystemExit, match="--spare takes"):
            spared(the_lab, wrong)


def test_per_host_figures_count_restarts_and_a_whole_life_leak() -> None:
    steady = [Sample(m * 60.0, "central1", 5, 140 * 1024, 30) for m in range(120)]
    leaky = [Sample(m * 60.0, "edge1", 9, (60 + m // 6) * 1024, 20) for m in range(120)]
    restarted = [Sample(m * 60.0, "central2", 100 + m // 30, 130 * 1024, 30) for m in range(120)]
    figures = per_host_growth(steady + leaky + restarted)
    assert figures["central1"]["pids"] == 1
    assert figures["central1"]["rss_mb_per_h_settled"] == 0.0
    assert figures["central2"]["pids"] == 4
    assert figures["edge1"]["rss_mb_per_h_settled"] == pytest.approx(10.0, abs=0.2)
    assert figures["edge1"]["rss_mb_last"] == 79.0
    # a 40-minute warm-up, then flat: the whole-life slope shows growth, the last hour none
    warm = [Sample(m * 60.0, "central1", 5, (120 + min(m, 40)) * 1024, 30) for m in range(120)]
    late = per_host_growth(warm)["central1"]
    assert late["rss_mb_per_h_settled"] > 5
    assert late["rss_mb_per_h_last_hour"] == 0.0
    assert figures["central2"]["rss_mb_per_h_last_hour"] is None, "no process lived 90 minutes"
    assert figures["edge1"]["rss_mb_per_h_last_hour"] == pytest.approx(10.0, abs=0.5)
    # samples arrive interleaved from the hosts' samplers: the order they come in changes nothing
    mixed = steady + leaky + restarted
    random.Random(7).shuffle(mixed)
    assert per_host_growth(mixed) == figures
    assert worst_last_hour(mixed) == worst_last_hour(steady + leaky + restarted)


def test_the_tier_figure_for_the_last_hour_is_its_worst_long_lived_host() -> None:
    flat = [Sample(m * 60.0, "central1", 5, 140 * 1024, 30) for m in range(120)]
    restarted = [
        Sample(m * 60.0, "central2", 100 + m // 30, (130 + m) * 1024, 30) for m in range(120)
    ]
    assert worst_last_hour(flat + restarted) == 0.0, (
        "a host restarted every 30 min has no last hour"
    )
    leaky = [Sample(m * 60.0, "central2", 7, (130 + m // 6) * 1024, 30) for m in range(120)]
    assert worst_last_hour(flat + leaky) == pytest.approx(10 * 1024, rel=0.05)
    assert worst_last_hour(restarted) is None
