from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.edge.config import ConfigError, load_config

BIN = Path(sys.executable).parent

GOOD = """
[camera]
id = "edge-in"
direction = "entry"
api_key = "k"

[central]
url = "http://127.0.0.1:9"

[source]
kind = "folder"
path = "/tmp"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


def test_a_minimal_config_gets_safe_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.central.connect_timeout_s == 2.0
    assert config.gate.offline_entry == "open"
    assert config.uploader.batch_max_events == 100


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (GOOD + "[gate]\ndeadline_s = -1\n", "gate.deadline_s"),
        (GOOD + "[outbox]\nmax_bytz = 5\n", "outbox.max_bytz: unknown key"),
        (GOOD.replace('direction = "entry"', 'direction = "sideways"'), "camera.direction"),
        (GOOD.replace('url = "http://127.0.0.1:9"', 'url = "ftp://x"'), "central.url"),
        (GOOD.replace('path = "/tmp"', ""), "source"),
        (GOOD.replace('api_key = "k"', ""), "camera"),
    ],
)
def test_an_invalid_config_is_refused_with_the_key_named(
    tmp_path: Path, change: str, named: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, change))
    assert named in str(error.value)


def test_the_cli_exits_2_and_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "[aggregate]\nmin_agreeing = 0\n")
    result = subprocess.run(
        [str(BIN / "parking-edge"), "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "aggregate.min_agreeing" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_toml_syntax_error_is_reported_with_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"edge.toml: not valid TOML"):
        load_config(write(tmp_path, "[camera\n"))
