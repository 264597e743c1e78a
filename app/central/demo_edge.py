"""The command line of the demo's simulated edge (filled in once the edge agent lands)."""

from __future__ import annotations

from pathlib import Path


def edge_command(
    edge_bin: str, *, data_dir: Path, url: str, creds: dict[str, dict[str, dict[str, str]]]
) -> list[str]:
    cams = creds["cameras"]
    return [
        edge_bin,
        "simulate",
        "--central",
        url,
        "--entry-key",
        cams["gate-1-in"]["api_key"],
        "--exit-key",
        cams["gate-1-out"]["api_key"],
        "--data-dir",
        str(data_dir / "edge"),
    ]
