"""Real plate pictures replayed through ``parking-edge run`` with the TFLite reader -> central."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from app.contract import normalize_plate
from app.edge.agent import open_reader
from app.edge.config import ConfigError, parse_config
from app.edge.reader.litert import LiteRTPlateReader
from tests.edge.conftest import BIN, Central, NotifySocket, write_lane_config
from tests.edge.helpers import edge_config
from tests.edge.test_reader_models import US_IMAGES, _us_label

REPLAYED = US_IMAGES[:3]


def test_run_with_the_litert_reader_turns_real_pictures_into_events(
    central: Central, tmp_path: Path, plates_dir: Path, notify_socket: NotifySocket
) -> None:
    # Only the pictures: no ground-truth sidecars beside them, so nothing but pixels is read.
    folder = tmp_path / "pictures"
    folder.mkdir()
    for n, name in enumerate(REPLAYED):
        (folder / f"{n:02d}-{name}").symlink_to(plates_dir / name)
    reader = {
        "kind": "litert",
        "threads": 1,
        "grammars": ["generic"],
        "generic_patterns": ["[A-Z0-9]{4,8}"],
    }
    config = write_lane_config(tmp_path, central, folder, reader=reader)
    before = set(central.event_ids("edge-in"))
    run = subprocess.Popen(
        [str(BIN / "parking-edge"), "run", "--config", str(config), "--exit-when-drained"],
        env={**os.environ, "NOTIFY_SOCKET": str(notify_socket.path)},
        stderr=subprocess.PIPE,
        text=True,
    )
    notify_socket.wait_for("READY=1", timeout=60)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr[-3000:]
    rows = [r for r in central.rows("edge-in") if r[0] not in before]
    assert [normalize_plate(plate) for _, _, plate in rows] == [_us_label(n) for n in REPLAYED]


@pytest.mark.parametrize(
    ("reader", "key"),
    [
        ({"kind": "litert", "generic_patterns": ["[A-Z"]}, "generic_patterns"),
        ({"kind": "litert", "grammars": ["vn", "klingon"]}, "reader.grammars"),
        ({"kind": "litert", "regions": ["vn", "klingon"]}, "reader.regions"),
        ({"kind": "litert", "regions": ["eu", "eu"]}, "reader.regions"),
        ({"kind": "litert", "regions": []}, "reader.regions"),
        ({"kind": "litert", "regions": ["us"], "grammars": ["vn"]}, "grammars"),
        ({"kind": "litert", "generic_templates": ["9LQ"]}, "reader.generic_templates"),
        ({"kind": "litert", "threads": 0}, "reader.threads"),
    ],
)
def test_bad_reader_settings_are_config_errors_naming_the_key(
    tmp_path: Path, reader: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        parse_config(edge_config(source={"path": str(tmp_path)}, reader=reader))


def test_the_litert_reader_is_built_from_the_config(tmp_path: Path) -> None:
    config = parse_config(
        edge_config(
            source={"path": str(tmp_path)},
            reader={"kind": "litert", "grammars": ["generic"], "generic_templates": ["LL9L9L"]},
        )
    )
    reader = open_reader(config)
    assert isinstance(reader, LiteRTPlateReader)
    assert reader.pipeline.grammar.regions == ("generic",)
    assert reader.pipeline.grammar.generic_templates == ["LL9L9L"]
    shapes = [d.model.input_shape for d in reader.pipeline.detectors]
    assert shapes == [(1, 160, 320, 3), (1, 448, 800, 3)]
    # small print read by the full-width recognizer: the narrow copy is not loaded
    assert reader.pipeline.recognizer.narrow is None
    fine = open_reader(
        config.model_copy(update={"reader": config.reader.model_copy(update={"detector": "fine"})})
    )
    assert isinstance(fine, LiteRTPlateReader)
    assert fine.pipeline.detectors[-1].model.input_shape == (1, 544, 960, 3)
    raw = {**config.model_dump(mode="json"), "reader": {"kind": "litert", "detector": "cascade"}}
    cascade = open_reader(parse_config(raw))
    assert isinstance(cascade, LiteRTPlateReader)
    assert [d.model.input_shape[1] for d in cascade.pipeline.detectors] == [160, 448, 544]
    with pytest.raises(ValueError, match="detector"):
        parse_config({**raw, "reader": {"kind": "litert", "detector": "medium"}})
    eu = open_reader(parse_config({**raw, "reader": {"kind": "litert", "regions": ["eu", "us"]}}))
    assert isinstance(eu, LiteRTPlateReader)
    assert eu.pipeline.grammar.regions == ("eu", "us")
    assert eu.pipeline.grammar.bands["NL"] == "NL"
