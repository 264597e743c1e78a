"""Central tier failover figures in the lab, under load from simulated edge cameras.

    .venv/bin/python bench/failover_central.py [--scenarios central-crash,kill9,lb-crash,upgrade]
                                               [--rate 10] [--probe-rate 10] [--no-bring-up]

Boots central1-2 and lb1-2 and converges playbooks/central.yml + lb.yml unless the VIP already
answers over TLS. Then, per scenario, on this machine (10.77.0.1, which reaches the VIP):

- ``parking-edge simulate`` (the real outbox and uploader) drives an entry and an exit camera
  against ``https://VIP`` with the lab CA, its /metrics scraped for the uploader's failed sends;
- a probe posts one unique event at a time (one attempt each; a request whose kept-alive
  connection the server closed unanswered is sent once more, as ``probe_retried``) and times
  every request;
- a watcher opens a fresh TLS connection to the VIP every 0.1 s (when the VIP answers again);
- a live-feed client (WebSocket, operator token) that reconnects by itself when its connection
  dies, and must see plate events again after the fault.

Scenarios: ``central-crash`` (kill -9 of the active central's host, then power it on and wait
until it serves again), ``kill9`` (SIGKILL of the central process; systemd restarts it),
``lb-crash`` (crash of the lb holding the VIP, then power it on), ``upgrade``
(playbooks/upgrade.yml with a fresh build of this checkout: a new release on both centrals).

After each scenario the simulator stops, a second ``simulate --count 0 --exit-when-drained``
drains what is left, and every event the outboxes and the probe made is looked up in
PostgreSQL: lost = made but not stored, duplicated = stored rows beyond one per event id or
stored rows no one sent (a probe post whose answer was lost may be stored: that is delivery
at least once, counted as ``probe_unacked_stored``, not a duplicate). ``resent`` counts the calls
the edge client sent again on a fresh connection (the old one died under it, or a connect timed
out while the VIP moved) before the uploader saw any failure. The last line is one JSON object
(worst case over the scenarios).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.lab_tier import (
    SCENARIOS,
    Result,
    Tier,
    bring_up,
    log,
    make_cameras,
    operator_token,
    run_scenario,
)


def table(results: list[Result]) -> str:
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    head = (
        f"{'scenario':<14} {'made':>6} {'failed':>6} {'resent':>6} {'lost':>5} {'dup':>4} "
        f"{'vip_move_s':>10} {'max_lat_s':>9} {'edge_le_s':>9} {'probe_fail':>10} "
        f"{'live_back_s':>11} {'recovery_s':>10}"
    )
    rows = [
        f"{r.scenario:<14} {r.events_made:>6} {r.failed_sends:>6} {r.reconnects:>6} "
        f"{r.events_lost:>5} "
        f"{r.events_duplicated:>4} {fmt(r.vip_move_s):>10} {r.max_latency_s:>9.2f} "
        f"{r.edge_latency_le_s:>9.2f} {r.probe_failed:>10} {fmt(r.live_reconnect_s):>11} "
        f"{fmt(r.recovery_s):>10}"
        for r in results
    ]
    return "\n".join([head, *rows])


def run(
    scenarios: list[str], *, rate: float, probe_rate: float, bring: bool = True
) -> list[Result]:
    tier = Tier.from_inventory()
    if bring:
        bring_up(tier)
    run_id = secrets.token_hex(3)
    cameras = make_cameras(tier, run_id)
    token = operator_token(tier, run_id)
    results: list[Result] = []
    made: set[uuid.UUID] = set()
    with tempfile.TemporaryDirectory(prefix="parking-failover-") as tmp:
        for name in scenarios:
            log(f"scenario {name}")
            result, made = run_scenario(
                tier, name, cameras, token, Path(tmp), made, rate=rate, probe_rate=probe_rate
            )
            results.append(result)
            log(table([result]).splitlines()[1])
    return results


def summary(results: list[Result]) -> dict[str, Any]:
    moves = [r.vip_move_s for r in results if r.vip_move_s is not None]
    return {
        "failed_sends": sum(r.failed_sends for r in results),
        "reconnects": sum(r.reconnects for r in results),
        "events_lost": sum(r.events_lost for r in results),
        "events_duplicated": sum(r.events_duplicated for r in results),
        "vip_move_s": round(max(moves), 2) if moves else None,
        "max_latency_s": round(max((r.max_latency_s for r in results), default=0.0), 2),
        "probe_failed": sum(r.probe_failed for r in results),
        "probe_retried": sum(r.probe_retried for r in results),
        "events_made": sum(r.events_made for r in results),
        "live_reconnected": all(
            r.live_reconnect_s is not None
            for r in results
            if r.scenario in ("central-crash", "lb-crash")
        ),
        "scenarios": {
            r.scenario: {
                "failed_sends": r.failed_sends,
                "reconnects": r.reconnects,
                "probe_unacked_stored": r.unacked_stored,
                "events_lost": r.events_lost,
                "events_duplicated": r.events_duplicated,
                "vip_move_s": r.vip_move_s,
                "max_latency_s": round(r.max_latency_s, 2),
                "live_reconnect_s": r.live_reconnect_s,
                "recovery_s": r.recovery_s,
            }
            for r in results
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--rate", type=float, default=10.0, help="simulated events per second")
    parser.add_argument("--probe-rate", type=float, default=10.0, help="probe events per second")
    parser.add_argument("--no-bring-up", action="store_true")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {', '.join(SCENARIOS)}")
    results = run(chosen, rate=args.rate, probe_rate=args.probe_rate, bring=not args.no_bring_up)
    print(table(results))
    for result in results:
        for note in result.notes:
            print(f"  {result.scenario}: {note}")
    print(json.dumps(summary(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
