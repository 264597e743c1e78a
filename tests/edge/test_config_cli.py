from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.edge.config import ConfigError, load_config
from tests.edge.helpers import write_edge_toml

BIN = Path(sys.executable).parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


def test_a_minimal_config_gets_safe_defaults(tmp_path: Path) -> None:
    config = load_config(write_edge_toml(tmp_path))
    assert config.central.connect_timeout_s == 2.0
    assert config.gate.offline_entry == "open"
    assert config.uploader.batch_max_events == 100


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"gate": {"deadline_s": -1}}, "gate.deadline_s"),
        ({"outbox": {"max_bytz": 5}}, "outbox.max_bytz: unknown key"),
        ({"camera": {"direction": "sideways"}}, "camera.direction"),
        ({"central": {"url": "ftp://x"}}, "central.url"),
        ({"source": {"path": None}}, "source"),
        ({"camera": {"api_key": None}}, "camera"),
    ],
)
def test_an_invalid_config_is_refused_with_the_key_named(
    tmp_path: Path, change: dict[str, dict[str, object]], named: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write_edge_toml(tmp_path, **change))
    assert named in str(error.value)


def test_the_cli_exits_2_and_names_the_key(tmp_path: Path) -> None:
    path = write_edge_toml(tmp_path, aggregate={"min_agreeing": 0})
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
