"""Small builders shared by the edge tests."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from app.contract import PlateEvent
from app.edge.ids import EventIdFactory

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16 + b"\xff\xd9"
_ids = EventIdFactory()


def jpeg(size: int) -> bytes:
    """A byte string central would take as a JPEG, ``size`` bytes long."""
    return b"\xff\xd8\xff\xe0" + b"\x11" * (size - 6) + b"\xff\xd9"


def make_event(camera_id: str = "edge-in", plate: str = "51F-123.45") -> PlateEvent:
    now = datetime.now(UTC)
    return PlateEvent(
        event_id=_ids.new(now),
        camera_id=camera_id,
        captured_at=now,
        plate=plate,
        confidence=0.93,
    )


EdgeToml = dict[str, dict[str, object]]


def edge_config(**sections: Mapping[str, object]) -> EdgeToml:
    """The smallest valid ``edge.toml``, as the dict TOML reads it: entry lane ``edge-in`` with an
    inline key, a central nobody answers at, a folder source. ``sections`` add or override keys
    (``gate={"driver": "file", "record_file": "..."}``); a key given as None is left out
    (``camera={"api_key": None}``), as TOML has no null."""
    config: EdgeToml = {
        "camera": {"id": "edge-in", "direction": "entry", "api_key": "k"},
        "central": {"url": "http://127.0.0.1:9"},
        "source": {"kind": "folder", "path": "/tmp"},
    }
    for name, values in sections.items():
        section = config.setdefault(name, {})
        for key, value in values.items():
            if value is None:
                section.pop(key, None)
            else:
                section[key] = value
    return config


def edge_toml(config: Mapping[str, Mapping[str, object]]) -> str:
    """``config`` (sections of strings, numbers, booleans, paths and lists) as TOML text."""
    text = "\n".join(
        f"[{name}]\n" + "".join(f"{key} = {_toml_value(v)}\n" for key, v in values.items())
        for name, values in config.items()
    )
    expected = {name: {k: _plain(v) for k, v in values.items()} for name, values in config.items()}
    assert tomllib.loads(text) == expected, "edge_toml cannot render a value"
    return text


def write_edge_toml(path: Path, **sections: Mapping[str, object]) -> Path:
    """``edge_config(**sections)`` written to ``path`` (``edge.toml`` inside it if a folder)."""
    if path.is_dir():
        path = path / "edge.toml"
    path.write_text(edge_toml(edge_config(**sections)), encoding="utf-8")
    return path


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _toml_value(value: object) -> str:
    value = _plain(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)  # strings, ints and floats read the same in TOML
