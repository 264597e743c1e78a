"""The edge config is described once, by its model (app/edge/config.py): docs/edge-config.md is
generated from it (tools/edge_config_reference.py), and the two files that write configs by hand,
packaging/edge/edge.toml.example and the edge role's template, are valid configs of that model
for every value the role accepts."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from app.edge.config import EdgeConfig, parse_config
from support.role_render import REPO, render
from tools.edge_config_reference import TARGET, main, minimal_example

EXAMPLE = REPO / "packaging" / "edge" / "edge.toml.example"
TEMPLATE = "etc/parking-edge/edge.toml.j2"
SPECS = yaml.safe_load((REPO / "roles/edge/meta/argument_specs.yml").read_text())["argument_specs"][
    "main"
]["options"]


def sections() -> list[tuple[str, type[BaseModel]]]:
    found = []
    for name, field in EdgeConfig.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel), name
        found.append((name, model))
    return found


# -- the reference ------------------------------------------------------------------------------


def test_every_section_and_key_of_the_model_is_described() -> None:
    for name, model in sections():
        assert (model.__doc__ or "").strip(), f"[{name}] ({model.__name__}) has no docstring"
        for key, field in model.model_fields.items():
            assert (field.description or "").strip(), f"{name}.{key} has no description"


def test_the_committed_reference_is_generated_from_the_model() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "edge_config_reference.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_check_fails_on_a_stale_page_and_the_tool_rewrites_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "edge-config.md"
    page.write_text(TARGET.read_text().replace("| `deadline_s` |", "| `deadline` |"))
    assert main(["--check", "--output", str(page)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main(["--output", str(page)]) == 0
    assert main(["--check", "--output", str(page)]) == 0
    assert page.read_text() == TARGET.read_text()


def _rows(page: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(section, key) -> (type, default) of every table row of the page."""
    rows: dict[tuple[str, str], tuple[str, str]] = {}
    section = ""
    for line in page.splitlines():
        heading = re.match(r"^## `\[(\w+)\]`", line)
        if heading:
            section = heading.group(1)
        row = re.match(r"^\| `(\w+)` \| (.+?) \| (.+?) \| .+ \|$", line)
        if row and section:
            rows[(section, row.group(1))] = (row.group(2), row.group(3))
    return rows


def test_the_page_lists_every_key_with_the_models_default() -> None:
    rows = _rows(TARGET.read_text())
    expected = {(name, key) for name, model in sections() for key in model.model_fields}
    assert set(rows) == expected
    for name, model in sections():
        for key, field in model.model_fields.items():
            _, shown = rows[(name, key)]
            if field.is_required():
                assert shown == "**required**", (name, key)
            elif field.default is None:
                assert shown == "unset", (name, key)
            else:
                value = tomllib.loads(f"v = {shown.strip('`')}")["v"]
                assert value == to_jsonable_python(field.default), (name, key, shown)


def test_the_pages_minimal_file_is_a_valid_config() -> None:
    page = TARGET.read_text()
    example = minimal_example()
    assert f"```toml\n{example}```" in page
    config = parse_config(tomllib.loads(example))
    assert config.camera.api_key_file is not None


# -- the packaging example -------------------------------------------------------------------


def test_the_packaging_example_is_a_valid_config() -> None:
    parse_config(tomllib.loads(EXAMPLE.read_text()), origin=str(EXAMPLE))


def test_the_packaging_examples_commented_out_keys_are_valid_too() -> None:
    text = EXAMPLE.read_text()
    switched_on, count = re.subn(r"(?m)^# (\w+ = )", r"\1", text)
    assert count >= 3, "the example shows optional keys as '# key = value' lines"
    config = parse_config(tomllib.loads(switched_on), origin=f"{EXAMPLE} (all keys on)")
    assert config.central.ca_file is not None and config.sentry.dsn is not None


# -- the role's template -----------------------------------------------------------------------

# What build.yml sets and the inventory gives; no facts, no lookups.
INVENTORY: dict[str, Any] = {
    "edge_camera_id": "gate-7-in",
    "edge_lot_id": "north",
    "edge_central_url": "https://vip.example",
    "edge_clock_require_sync": "kernel",
    "edge_source_uri": "rtsp://camera.lan/stream",  # preflight asks for it with opencv
    "_edge_release": "fedcba9876543210",
    "_edge_wheel_name": "parking_edge-0.1.0-py3-none-any.whl",
}
TEMPLATE_TEXT = (REPO / "roles/edge/templates" / TEMPLATE).read_text()
# The role variables with a fixed set of values that the template writes into edge.toml, and
# where each lands in the config.
CHOICES = {
    name: spec["choices"]
    for name, spec in SPECS.items()
    if "choices" in spec and re.search(rf"\b{name}\b", TEMPLATE_TEXT)
}
LANDS_IN = {
    "edge_camera_direction": "camera.direction",
    "edge_source_kind": "source.kind",
    "edge_reader_kind": "reader.kind",
    "edge_reader_detector": "reader.detector",
    "edge_reader_zoom_tiles": "reader.zoom_tiles",
    "edge_plate_regions": "reader.regions",
    "edge_gate_driver": "gate.driver",
    "edge_offline_entry": "gate.offline_entry",
    "edge_offline_exit": "gate.offline_exit",
    "edge_clock_require_sync": "clock.require_sync",
}


def _rendered(overrides: dict[str, Any]) -> EdgeConfig:
    text = render("edge", TEMPLATE, {**INVENTORY, **overrides})
    return parse_config(tomllib.loads(text), origin=f"rendered edge.toml {overrides}")


def _value(config: EdgeConfig, dotted: str) -> Any:
    section, key = dotted.split(".")
    return getattr(getattr(config, section), key)


def test_every_choice_variable_of_the_template_says_where_it_lands() -> None:
    assert set(CHOICES) == set(LANDS_IN)


@pytest.mark.parametrize(
    ("name", "choice"),
    [(name, choice) for name, choices in CHOICES.items() for choice in choices],
)
def test_the_role_template_renders_a_valid_config_for_every_value_the_role_accepts(
    name: str, choice: str
) -> None:
    value: Any = [choice] if SPECS[name]["type"] == "list" else choice
    config = _rendered({name: value})
    assert _value(config, LANDS_IN[name]) == value


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picked=st.fixed_dictionaries(
        {
            name: (
                st.lists(st.sampled_from(choices), min_size=1, unique=True)
                if SPECS[name]["type"] == "list"
                else st.sampled_from(choices)
            )
            for name, choices in CHOICES.items()
        }
    ),
    ca=st.sampled_from(["", "files/ca.crt"]),
    dsn=st.sampled_from(["", "https://0123abcd@sentry.example/3"]),
    flags=st.fixed_dictionaries(
        {n: st.booleans() for n in ("edge_commands_enabled", "edge_flag_offline_exit")}
    ),
)
def test_any_combination_of_the_roles_values_renders_a_valid_config(
    picked: dict[str, Any], ca: str, dsn: str, flags: dict[str, bool]
) -> None:
    config = _rendered({**picked, **flags, "edge_ca_cert_src": ca, "edge_sentry_dsn": dsn})
    for name, value in picked.items():
        assert _value(config, LANDS_IN[name]) == value, name
    assert (config.central.ca_file is not None) == bool(ca)
    assert config.sentry.dsn == (dsn or None)
    assert config.commands.enabled is flags["edge_commands_enabled"]
    assert config.gate.flag_offline_exit is flags["edge_flag_offline_exit"]
