"""The demo's edge agents: a simulated pair of lanes, and a lane replaying real plate pictures.

* ``gate-1-in`` / ``gate-1-out``: ``parking-edge simulate`` sends synthetic vehicles that enter
  and leave, so sessions open and close with fees.
* ``gate-2-in``: ``parking-edge run`` on an image folder through the real TFLite reader, when
  the project's test pictures (``shared/data/plates/vn-gold`` beside the checkout, or
  ``$PARKING_SHARED_DIR``) are on this machine.
"""

from __future__ import annotations

import os
from pathlib import Path

Creds = dict[str, dict[str, dict[str, str]]]


def plate_pictures() -> Path | None:
    """The folder of real Vietnamese plate pictures, if this machine has it."""
    roots = [Path(os.environ["PARKING_SHARED_DIR"])] if os.environ.get("PARKING_SHARED_DIR") else []
    roots += [parent / "shared" for parent in (Path.cwd(), *Path.cwd().parents)]
    for root in roots:
        folder = root / "data" / "plates" / "vn-gold" / "images"
        if folder.is_dir():
            return folder
    return None


def simulate_command(edge_bin: str, *, data_dir: Path, url: str, creds: Creds) -> list[str]:
    cams = creds["cameras"]
    return [
        edge_bin, "simulate", "--central", url,
        "--entry-key", cams["gate-1-in"]["api_key"],
        "--exit-key", cams["gate-1-out"]["api_key"],
        "--data-dir", str(data_dir / "edge"),
    ]  # fmt: skip


def replay_command(
    edge_bin: str, *, data_dir: Path, url: str, creds: Creds, pictures: Path
) -> list[str]:
    """Writes the replaying lane's config (key included, so mode 0600) and returns its command."""
    config = data_dir / "edge-gate-2-in.toml"
    config.touch(mode=0o600)
    config.write_text(
        "\n".join([
            "[camera]",
            'id = "gate-2-in"',
            'direction = "entry"',
            f'api_key = "{creds["cameras"]["gate-2-in"]["api_key"]}"',
            "[central]",
            f'url = "{url}"',
            "[source]",
            'kind = "folder"',
            f'path = "{pictures}"',
            "fps = 2",
            "loop = true",
            "frames_per_image = 3",
            "[reader]",
            'kind = "litert"',
            "threads = 1",
            'grammars = ["vn", "generic"]',
            "[aggregate]",
            "min_agreeing = 2",
            "cooldown_s = 600",
            "[gate]",
            'driver = "log"',
            "[outbox]",
            f'dir = "{data_dir / "edge-gate-2-in"}"',
            "[metrics]",
            "port = 0",
            "",
        ])
    )  # fmt: skip
    return [edge_bin, "run", "--config", str(config)]


def edge_commands(edge_bin: str, *, data_dir: Path, url: str, creds: Creds) -> list[list[str]]:
    commands = [simulate_command(edge_bin, data_dir=data_dir, url=url, creds=creds)]
    pictures = plate_pictures()
    if pictures is not None and "gate-2-in" in creds["cameras"]:
        commands.append(
            replay_command(edge_bin, data_dir=data_dir, url=url, creds=creds, pictures=pictures)
        )
    return commands
