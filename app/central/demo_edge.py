"""The demo's edge agents: a simulated pair of lanes, and a lane replaying real plate pictures.

* ``gate-1-in`` / ``gate-1-out``: ``parking-edge simulate`` sends synthetic vehicles that enter
  and leave, so sessions open and close with fees (held at the exit until the demo's cashier,
  ``demo_cashier.py``, takes the money; the lane's command channel then opens it).
* ``gate-2-in`` / ``gate-2-out``: ``parking-edge run`` on an image folder through the real
  TFLite reader, when the project's test pictures (``shared/data/plates/vn-gold`` beside the
  checkout, or ``$PARKING_SHARED_DIR``) are on this machine. The exit lane replays the same
  pictures ``GATE_2_DWELL_S`` later: the vehicles that came in leave, and where the two lanes
  read a plate differently the guard gets an anomaly to resolve, as at a real lot.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

Creds = dict[str, dict[str, dict[str, str]]]

# One picture every 4 s (three frames at 1 fps, then one empty frame: see the config below), and
# the exit lane starts this much later: about 20 of gate 2's vehicles are inside at a time.
GATE_2_DWELL_S = 90.0


@dataclass(frozen=True)
class DemoEdge:
    command: list[str]
    delay_s: float = 0.0


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
        "--dwell", "30", "300",
    ]  # fmt: skip


def replay_command(
    edge_bin: str,
    *,
    data_dir: Path,
    url: str,
    creds: Creds,
    pictures: Path,
    camera_id: str = "gate-2-in",
) -> list[str]:
    """Writes the replaying lane's config (key included, so mode 0600) and returns its command."""
    camera = creds["cameras"][camera_id]
    config = data_dir / f"edge-{camera_id}.toml"
    config.touch(mode=0o600)
    config.write_text(
        "\n".join([
            "[camera]",
            f'id = "{camera_id}"',
            f'direction = "{camera["direction"]}"',
            f'api_key = "{camera["api_key"]}"',
            "[central]",
            f'url = "{url}"',
            "[source]",
            'kind = "folder"',
            f'path = "{pictures}"',
            "fps = 1",
            "loop = true",
            "frames_per_image = 3",
            "[reader]",
            'kind = "litert"',
            "threads = 1",
            'regions = ["vn", "generic"]',
            "[aggregate]",
            "min_agreeing = 2",
            "cooldown_s = 600",
            "[gate]",
            'driver = "log"',
            "[outbox]",
            f'dir = "{data_dir / f"edge-{camera_id}"}"',
            "[metrics]",
            "port = 0",
            "",
        ])
    )  # fmt: skip
    return [edge_bin, "run", "--config", str(config)]


def edge_commands(edge_bin: str, *, data_dir: Path, url: str, creds: Creds) -> list[DemoEdge]:
    edges = [DemoEdge(simulate_command(edge_bin, data_dir=data_dir, url=url, creds=creds))]
    pictures = plate_pictures()
    for camera_id, delay_s in (("gate-2-in", 0.0), ("gate-2-out", GATE_2_DWELL_S)):
        if pictures is not None and camera_id in creds["cameras"]:
            command = replay_command(
                edge_bin, data_dir=data_dir, url=url, creds=creds, pictures=pictures,
                camera_id=camera_id,
            )  # fmt: skip
            edges.append(DemoEdge(command, delay_s))
    return edges
