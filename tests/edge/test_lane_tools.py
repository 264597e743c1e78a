"""``parking-edge check-camera`` and ``pulse-relay``: the two commands a person at the lane runs."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.edge.cli import main
from app.edge.gate import read_relay_file
from tests.edge.helpers import write_edge_toml


def lane_config(
    tmp_path: Path, *, source: dict[str, object], gate: dict[str, object] | None = None
) -> Path:
    return write_edge_toml(tmp_path, camera={"id": "lane-1-in"}, source=source, gate=gate or {})


def picture_folder(tmp_path: Path, count: int = 1) -> Path:
    folder = tmp_path / "pictures"
    folder.mkdir()
    for n in range(count):
        image = np.full((48, 64, 3), 40 * n, dtype=np.uint8)
        assert cv2.imwrite(str(folder / f"{n:02d}.png"), image)
    return folder


def test_check_camera_saves_one_frame_from_the_image_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = picture_folder(tmp_path, 2)
    config = lane_config(tmp_path, source={"path": folder})
    out = tmp_path / "shots" / "frame.jpg"
    assert main(["check-camera", "--config", str(config), "--output", str(out)]) == 0
    assert "one frame 64x48" in capsys.readouterr().out
    saved = cv2.imread(str(out))
    assert saved is not None and saved.shape == (48, 64, 3)


def test_check_camera_fails_clearly_without_pictures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    config = lane_config(tmp_path, source={"path": empty})
    out = tmp_path / "frame.jpg"
    assert main(["check-camera", "--config", str(config), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: camera (folder ") and "holds no" in err
    assert not out.exists()


def test_check_camera_fails_clearly_on_a_stream_it_cannot_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-video.mp4"
    config = lane_config(tmp_path, source={"kind": "opencv", "path": None, "uri": str(missing)})
    args = ["check-camera", "--config", str(config), "--output", str(tmp_path / "f.jpg")]
    assert main([*args, "--timeout", "10"]) == 1
    assert "OpenCV cannot open" in capsys.readouterr().err


def test_pulse_relay_with_yes_pulses_the_file_relay_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = picture_folder(tmp_path)
    record = tmp_path / "relay.jsonl"
    config = lane_config(
        tmp_path,
        source={"path": folder},
        gate={"driver": "file", "record_file": record},
    )
    assert main(["pulse-relay", "--config", str(config), "--seconds", "0.05", "--yes"]) == 0
    pulses = read_relay_file(record)
    assert [(p["seconds"], p["cause"], p["camera"]) for p in pulses] == [
        (0.05, "cli:pulse-relay", "lane-1-in")
    ]
    assert "relay pulsed: lane-1-in, 0.05 s" in capsys.readouterr().out


@pytest.mark.parametrize(("answer", "pulsed"), [("y\n", 1), ("n\n", 0), ("", 0)])
def test_pulse_relay_asks_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: str, pulsed: int
) -> None:
    folder = picture_folder(tmp_path)
    record = tmp_path / "relay.jsonl"
    config = lane_config(
        tmp_path,
        source={"path": folder},
        gate={"driver": "file", "record_file": record},
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    code = main(["pulse-relay", "--config", str(config), "--seconds", "0.01"])
    assert (code, len(read_relay_file(record))) == ((0, 1) if pulsed else (1, 0))


def test_pulse_relay_with_the_logging_driver_says_what_it_would_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = picture_folder(tmp_path)
    config = lane_config(tmp_path, source={"path": folder}, gate={"driver": "log"})
    assert main(["pulse-relay", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("would pulse the relay of lane-1-in for 1 s") and "nothing moves" in out


def test_pulse_relay_refuses_a_silly_length(tmp_path: Path) -> None:
    folder = picture_folder(tmp_path)
    config = lane_config(tmp_path, source={"path": folder})
    assert main(["pulse-relay", "--config", str(config), "--seconds", "45", "--yes"]) == 2
