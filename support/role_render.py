"""Render a role's template the way Ansible would, without Ansible: the role's defaults and vars
(lazily templated, native types like Ansible's), overridden by the test's values, and the few
filters and tests the roles' templates use. Good enough for templates and variables that use
plain Jinja; anything needing facts or lookups must be given by the test (StrictUndefined)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jinja2
import jinja2.nativetypes
import yaml

REPO = Path(__file__).resolve().parents[1]


def _combine(*dicts: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for one in dicts:
        merged.update(one)
    return merged


def _install(env: jinja2.Environment) -> None:
    env.filters.update(
        combine=_combine,
        comment=lambda text: "\n".join(f"# {line}" for line in str(text).splitlines()),
        to_json=lambda value: json.dumps(value),
        dirname=os.path.dirname,
        basename=os.path.basename,
        urlencode=lambda value: str(value),
    )
    env.tests.update(
        match=lambda value, pattern: re.match(pattern, str(value)) is not None,
        search=lambda value, pattern: re.search(pattern, str(value)) is not None,
    )


class RoleVars(Mapping[str, Any]):
    """Defaults, vars and overrides of one role; a string holding ``{{`` is templated when read."""

    def __init__(self, role: str, overrides: Mapping[str, Any]) -> None:
        root = REPO / "roles" / role
        self.root = root
        self.raw: dict[str, Any] = {}
        for part in ("defaults", "vars"):
            path = root / part / "main.yml"
            if path.exists():
                self.raw.update(yaml.safe_load(path.read_text()) or {})
        self.raw.update(overrides)
        self._native = jinja2.nativetypes.NativeEnvironment(undefined=jinja2.StrictUndefined)
        _install(self._native)
        self._cache: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self.raw:
            raise KeyError(key)
        if key not in self._cache:
            self._cache[key] = self._resolve(self.raw[key])
        return self._cache[key]

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, str) and "{{" in value:
            template = self._native.from_string(value.strip())
            # jinja2 annotates vars as a dict; with shared=True the context only looks names up
            # in it, so this lazy Mapping (each variable resolved when first asked) serves
            context = template.new_context(self, shared=True)  # type: ignore[arg-type]
            return self._native.concat(template.root_render_func(context))
        if isinstance(value, list):
            return [self._resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: self._resolve(v) for k, v in value.items()}
        return value

    def __contains__(self, key: object) -> bool:
        return key in self.raw

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


def render(role: str, template: str, overrides: Mapping[str, Any]) -> str:
    """``roles/<role>/templates/<template>`` with the role's variables and ``overrides``."""
    variables = RoleVars(role, {"ansible_managed": "Ansible managed (test)", **overrides})
    env = jinja2.Environment(  # noqa: S701 - renders configuration files, not HTML
        loader=jinja2.FileSystemLoader(variables.root / "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,  # as Ansible's template module
    )
    _install(env)
    compiled = env.get_template(template)
    # as in RoleVars._resolve: a lazy Mapping where jinja2 annotates a dict (shared=True)
    context = compiled.new_context(variables, shared=True)  # type: ignore[arg-type]
    return "".join(compiled.root_render_func(context))


def role_var(role: str, name: str, overrides: Mapping[str, Any]) -> Any:
    """One of the role's variables (a vars/ or defaults/ entry) as Ansible would evaluate it."""
    return RoleVars(role, overrides)[name]
