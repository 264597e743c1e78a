"""A short soak with a fixed seed (support/lab_soak.py, the code of bench/soak.py): traffic from
every lane while the nemesis injects its planned faults, one per tier at a time; nothing lost,
nothing stored twice, no invariant broken, and the lab converges by itself afterwards. The long
run is bench/soak.py (docs/soak.md)."""

from __future__ import annotations

import json
from pathlib import Path

from support.lab_soak import Options, soak_run
from tests.lab.harness import Lab

SEED = 204
MINUTES = 2.0


def test_a_short_soak_loses_nothing_and_converges(lab: Lab, tmp_path: Path) -> None:
    result = soak_run(
        Options(minutes=MINUTES, seed=SEED, gap=(10.0, 25.0), sample_s=30.0), tmp_path
    )
    print(json.dumps(result))
    assert result["faults_injected"] >= 3, result["faults"]
    assert result["events_captured"] > 0, result
    assert result["edge_events_captured"] > 0, "the edge agents captured nothing"
    assert result["events_lost"] == 0, result
    assert result["events_duplicated"] == 0, result
    assert result["invariant_violations"] == 0, result["violations"]
    assert result["converged_s"] is not None, result["not_converged"]
