#!/usr/bin/env python3
"""Render the hand-install unit ``packaging/edge/parking-edge.service`` from roles/edge.

The role's template (``roles/edge/templates/etc/systemd/system/parking-edge.service.j2``) is the
one source of the unit; this renders it with the role's defaults and the few values a hand
install differs in (``HAND_INSTALL``), the way Ansible's template module does (trim_blocks).

    python packaging/edge/render-unit.py          # write packaging/edge/parking-edge.service
    python packaging/edge/render-unit.py --check  # exit 1 when the committed copy differs

Needs jinja2 and PyYAML (the development venv has both). ``tests/edge/test_packaging_unit.py``
fails when the committed copy differs from what this renders.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "edge"
TEMPLATE = "etc/systemd/system/parking-edge.service.j2"
OUTPUT = REPO / "packaging" / "edge" / "parking-edge.service"

# What a hand install on a Pi differs in from the role's defaults.
HAND_INSTALL: dict[str, Any] = {
    "edge_camera_id": "",  # the camera id lives in /etc/parking-edge/edge.toml, not in the unit
    "edge_clock_require_sync": "kernel",  # a Pi: chrony or systemd-timesyncd sets the clock
    "_edge_current": "/opt/parking-edge",  # one venv (`python3 -m venv ... /opt/parking-edge`)
    "_edge_groups": None,  # the role's default groups (video, gpio: Raspberry Pi OS has both)
    "ansible_managed": (
        "Rendered from roles/edge/templates/" + TEMPLATE + " by packaging/edge/render-unit.py;\n"
        "edit the template and rerun the script, not this file."
    ),
}


def _comment(text: str) -> str:
    """Ansible's ``comment`` filter, plain style."""
    return "#\n" + "\n".join(f"# {line}" for line in str(text).splitlines()) + "\n#"


def render() -> str:
    context: dict[str, Any] = {
        **yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8")),
        **yaml.safe_load((ROLE / "vars" / "main.yml").read_text(encoding="utf-8")),
        **HAND_INSTALL,
    }
    if context["_edge_groups"] is None:
        context["_edge_groups"] = context["edge_supplementary_groups"]
    env = jinja2.Environment(  # noqa: S701 - a systemd unit, not HTML
        loader=jinja2.FileSystemLoader(ROLE / "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["comment"] = _comment
    assert env.loader is not None
    source = env.loader.get_source(env, TEMPLATE)[0]
    used = jinja2.meta.find_undeclared_variables(env.parse(source))
    templated = sorted(
        name for name in used if isinstance(context.get(name), str) and "{{" in context[name]
    )
    if templated:
        raise SystemExit(f"render-unit: give hand-install values for {', '.join(templated)}")
    return env.get_template(TEMPLATE).render(context)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    unit = render()
    if args.check:
        if OUTPUT.read_text(encoding="utf-8") != unit:
            print(f"{OUTPUT.relative_to(REPO)} differs: run {Path(__file__).relative_to(REPO)}")
            return 1
        return 0
    OUTPUT.write_text(unit, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
