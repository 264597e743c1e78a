"""``parking-edge``: run a lane, simulate traffic, look into the outbox.

parking-edge run --config /etc/parking-edge/edge.toml
parking-edge simulate --central URL --entry-key KEY --exit-key KEY --rate 0.5
parking-edge outbox stats|dead-letters|requeue ID [--data-dir DIR | --config FILE]
parking-edge offline [--json] [--data-dir DIR | --config FILE]   # lists copy, offline decisions
parking-edge check-config --config FILE                          # the unit template's validator
parking-edge check-camera [--config FILE] [--output PATH]        # one frame from the source
parking-edge pulse-relay [--config FILE] [--seconds S] [--yes]   # the barrier relay, once
parking-edge models list|install NAME... [--mirror DIR] [--dir DIR] # optional plate models

``run`` and ``simulate`` stop the same way on SIGTERM (systemd) and SIGINT (Ctrl-C): capture
stops, the command channels and the uploader stop, the outbox closes, exit status 0. A second
signal while stopping changes nothing; there is no traceback.

Logs go to stderr: ``parking-edge --log-format json|text COMMAND`` (default: JSON under systemd,
text on a terminal; ``PARKING_EDGE_LOG_FORMAT`` sets it too), see ``app/edge/logs.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from types import FrameType

from app.contract import MAX_COMMAND_WAIT_S, CameraDirection
from app.edge import __version__
from app.edge.clock import CLOCK_REQUIREMENTS
from app.edge.config import ConfigError, load_config
from app.edge.errors import init_error_reporting
from app.edge.logs import LOG_FORMATS, configure_logging, default_log_format

log = logging.getLogger("app.edge")

DEFAULT_DATA_DIR = "/var/lib/parking-edge"
DEFAULT_CONFIG = Path("/etc/parking-edge/edge.toml")
DEFAULT_PLATE_MODELS = "/opt/parking-edge/plate-models"


def _stop_on_signals() -> threading.Event:
    """SIGTERM and SIGINT both set the returned event (no KeyboardInterrupt is ever raised)."""
    stop = threading.Event()

    def handle(signum: int, _: FrameType | None) -> None:
        if stop.is_set():
            log.info("signal %s: already stopping", signal.Signals(signum).name)
            return
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def _stop_event(args: argparse.Namespace) -> threading.Event:
    stop = getattr(args, "stop", None)
    return stop if isinstance(stop, threading.Event) else _stop_on_signals()


def cmd_run(args: argparse.Namespace) -> int:
    stop = _stop_event(args)  # before the slow part (models, camera): Ctrl-C is clean there too
    from app.edge.agent import build_lane_agent

    config = load_config(args.config)
    init_error_reporting(config.sentry, camera_id=config.camera.id, lot=config.camera.lot)
    agent = build_lane_agent(config)
    try:
        if stop.is_set():
            return 0
        agent.runtime.start()
        log.info(
            "lane %s (%s) running, central %s",
            config.camera.id,
            config.camera.direction,
            config.central.url,
        )
        agent.run(stop, exit_when_drained=args.exit_when_drained)
    finally:
        agent.close()
    return 0


def _parse_camera(spec: str) -> tuple[str, CameraDirection, str]:
    """``ID:DIRECTION=KEY``, e.g. ``gate-2-in:entry=K3y``."""
    try:
        head, key = spec.split("=", 1)
        camera_id, direction = head.split(":", 1)
        return camera_id, CameraDirection(direction), key
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--camera {spec!r}: expected ID:entry=KEY or ID:exit=KEY"
        ) from None


def cmd_simulate(args: argparse.Namespace) -> int:
    stop = _stop_event(args)
    from app.edge.agent import EdgeRuntime, Lane, RuntimeSettings, Simulator
    from app.edge.gate import FileRelay, LoggingRelay, Relay

    lanes: list[Lane] = []
    if args.entry_key:
        lanes.append(Lane(args.entry_camera, CameraDirection.ENTRY, args.entry_key))
    if args.exit_key:
        lanes.append(Lane(args.exit_camera, CameraDirection.EXIT, args.exit_key))
    lanes += [Lane(*_parse_camera(spec)) for spec in args.camera]
    if args.cameras is not None:
        if args.cameras > len(lanes):
            raise ConfigError(
                f"--cameras {args.cameras}: only {len(lanes)} camera(s) have keys "
                "(give --entry-key/--exit-key or --camera ID:DIRECTION=KEY)"
            )
        lanes = lanes[: args.cameras]
    if not lanes:
        raise ConfigError("simulate needs at least one camera: --entry-key, --exit-key or --camera")
    settings = RuntimeSettings(
        central_url=args.central,
        data_dir=args.data_dir,
        outbox_max_bytes=args.outbox_max_bytes,
        backoff_cap_s=args.backoff_cap_s,
        breaker_reset_s=args.breaker_reset_s,
        heartbeat_interval_s=args.heartbeat_interval_s,
        metrics_port=args.metrics_port,
        commands_enabled=not args.no_commands,
        commands_wait_s=args.commands_wait_s,
        open_pulse_s=args.open_pulse_s,
        clock_require_sync=args.clock_require_sync,
        clock_max_held=args.clock_max_held,
    )
    relays: dict[str, Relay] = {
        lane.camera_id: (
            FileRelay(args.relay_file, camera_id=lane.camera_id)
            if args.relay_file is not None
            else LoggingRelay()
        )
        for lane in lanes
    }
    runtime = EdgeRuntime.build(settings, lanes, relays=relays)
    rng = random.Random(args.seed)  # noqa: S311 - synthetic traffic
    simulator = Simulator(
        runtime,
        rate=args.rate,
        dwell_s=(args.dwell[0], args.dwell[1]),
        rng=rng,
        snapshots=not args.no_snapshots,
    )
    made = 0
    try:
        if not stop.is_set():
            runtime.start()
            log.info(
                "simulating %s at %.2f events/s to %s%s",
                ", ".join(f"{lane.camera_id} ({lane.direction})" for lane in lanes),
                args.rate,
                args.central,
                "" if runtime.listeners else " (no command channel)",
            )
            made = simulator.run(
                stop,
                count=args.count,
                duration_s=args.duration,
                exit_when_drained=args.exit_when_drained,
            )
    finally:
        runtime.stop_commands()
        simulator.close()
        runtime.close()
        for relay in relays.values():
            relay.close()
    log.info("simulated %d events", made)
    return 0


def _outbox_dir(args: argparse.Namespace) -> Path:
    if args.config is not None:
        return Path(load_config(args.config).outbox.dir) / "outbox"
    return Path(args.data_dir) / "outbox"


def cmd_outbox(args: argparse.Namespace) -> int:
    from app.edge.outbox import DB_NAME, Outbox

    directory = _outbox_dir(args)
    if not (directory / DB_NAME).exists():
        print(f"error: no outbox at {directory}", file=sys.stderr)
        return 2
    with Outbox(directory) as outbox:
        if args.outbox_command == "stats":
            stats = asdict(outbox.stats())
            stats.pop("max_bytes")  # the agent's bound lives in its config, not the database
            if args.json:
                print(json.dumps(stats))
            else:
                for key, value in stats.items():
                    print(f"{key:<24} {value}")
        elif args.outbox_command == "dead-letters":
            letters = outbox.dead_letters()
            for letter in letters:
                print(
                    f"{letter.seq}\t{letter.event_id}\t{letter.camera_id}\t{letter.captured_at}\t"
                    f"tries={letter.attempts}\tstatus={letter.last_status}\t"
                    f"{(letter.last_error or '').replace(chr(10), ' ')[:160]}"
                )
            print(f"{len(letters)} dead letter(s)", file=sys.stderr)
        else:
            if not outbox.requeue(args.id):
                print(f"error: no dead letter {args.id}", file=sys.stderr)
                return 1
            print(f"requeued {args.id}")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(
        f"config ok: camera {config.camera.id} ({config.camera.direction}) -> {config.central.url}"
    )
    return 0


def cmd_check_camera(args: argparse.Namespace) -> int:
    """One frame from the configured source, its size printed and the picture saved."""
    import cv2

    from app.edge.agent import open_source
    from app.edge.sources import Frame

    config = load_config(args.config)
    kind = config.source.kind.value
    where = (
        config.source.uri or config.source.path or f"{config.source.width}x{config.source.height}"
    )
    got: list[Frame] = []
    failed: list[str] = []

    def grab() -> None:
        try:
            source = open_source(config)
        except Exception as exc:  # picamera2 and OpenCV raise anything: report it
            failed.append(f"{type(exc).__name__}: {exc}")
            return
        try:
            for frame in source.frames():
                got.append(frame)
                break
        except Exception as exc:
            failed.append(f"{type(exc).__name__}: {exc}")
        finally:
            source.close()

    # A stream that connects but sends nothing blocks in its read: wait in a daemon thread.
    thread = threading.Thread(target=grab, name="check-camera", daemon=True)
    thread.start()
    thread.join(args.timeout)
    if not got:
        reason = failed[0] if failed else f"no frame within {args.timeout:g} s"
        hint = ""
        if kind == "picamera2":
            hint = (
                " (is the agent stopped? `systemctl stop parking-edge`: the camera has one user;"
                " python3-picamera2 installed? the user in group video?"
                " `rpicam-hello --list-cameras` sees it?)"
            )
        print(f"error: camera ({kind} {where}): {reason}{hint}", file=sys.stderr)
        return 1
    frame = got[0]
    height, width = frame.image.shape[:2]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.output), frame.image):
        print(f"error: cannot write {args.output} (the suffix names the format)", file=sys.stderr)
        return 1
    print(f"camera ok: {kind} {where}: one frame {width}x{height}, saved to {args.output}")
    return 0


def cmd_sentry_test(args: argparse.Namespace) -> int:
    """Send one test error to Sentry as the agent would (DSN, release, environment, the lane and
    lot tags) and print its event id."""
    from app.contract.sentry import send_test_error

    config = load_config(args.config)
    if not init_error_reporting(config.sentry, camera_id=config.camera.id, lot=config.camera.lot):
        print("error: no Sentry DSN is configured ([sentry] dsn)", file=sys.stderr)
        return 2
    event_id = send_test_error(f"parking-edge sentry-test on lane {config.camera.id}")
    print(json.dumps({"event_id": event_id, "lane": config.camera.id}, sort_keys=True))
    return 0


def cmd_pulse_relay(args: argparse.Namespace) -> int:
    """Pulse the configured barrier relay once (asks first unless --yes)."""
    import time

    from app.edge.agent import open_relay

    config = load_config(args.config)
    gate = config.gate
    seconds = args.seconds if args.seconds is not None else gate.open_pulse_s
    if not 0 < seconds <= 30:
        raise ConfigError(f"--seconds {seconds:g}: between 0 and 30")
    what = {
        "gpio": f"GPIO pin {gate.pin} (BCM, active {'high' if gate.active_high else 'low'})",
        "file": f"file relay {gate.record_file}",
        "log": "logging driver (no relay attached)",
    }[gate.driver]
    if gate.driver == "log":
        print(
            f"would pulse the relay of {config.camera.id} for {seconds:g} s: {what}; nothing moves"
        )
        return 0
    if not args.yes:
        question = f"pulse the relay of {config.camera.id} for {seconds:g} s, {what}? [y/N] "
        try:
            answer = input(question)
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("not pulsed", file=sys.stderr)
            return 1
    try:
        relay = open_relay(config, config.camera.id)
    except Exception as exc:  # gpiozero raises its own errors: report them
        print(
            f"error: relay ({what}): {type(exc).__name__}: {exc} (python3-gpiozero installed?"
            " /dev/gpiochip* present? the user in group gpio? is the agent holding the pin?)",
            file=sys.stderr,
        )
        return 1
    try:
        relay.pulse(seconds, cause="cli:pulse-relay")
        time.sleep(seconds)  # the relay releases itself; closing earlier would cut the pulse
    except Exception as exc:
        print(f"error: relay ({what}): {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        relay.close()
    print(f"relay pulsed: {config.camera.id}, {seconds:g} s, {what}")
    return 0


def cmd_offline(args: argparse.Namespace) -> int:
    from app.edge.decisions import OfflineJournal
    from app.edge.lists import LocalLists

    data_dir = Path(load_config(args.config).outbox.dir) if args.config else Path(args.data_dir)
    journal_path = data_dir / "gate" / "offline.db"
    figures: dict[str, object] = {"decisions": 0, "unreported": 0}
    if journal_path.exists():
        journal = OfflineJournal(journal_path.parent)
        stats = journal.stats()
        journal.close()
        figures = {"decisions": stats.total, "unreported": stats.unreported}
    lists = LocalLists(data_dir / "lists") if (data_dir / "lists").is_dir() else None
    current = lists.current if lists else None
    figures |= {
        "lists_etag": current.etag if current else None,
        "lists_age_s": round(lists.age_s() or 0.0, 1) if lists and current else None,
        "allow": len(current.lists.allow) if current else 0,
        "deny": len(current.lists.deny) if current else 0,
        "passes": len(current.lists.passes) if current else 0,
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:<24} {value}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """The optional third-party plate models (docs/reader.md, "Plate-specific models")."""
    from app.edge.reader.catalogue import InstallError, catalogue, install, installed

    models = catalogue()
    if args.models_command == "list":
        for model in models.values():
            state = "installed" if installed(model, args.dir) else "not installed"
            print(f"{model.name:<24} {model.licence:<12} {state:<14} {model.what}")
        return 0
    unknown = [n for n in args.names if n not in models]
    if unknown:
        print(
            f"error: no model {unknown[0]!r} in the catalogue: one of {', '.join(models)}",
            file=sys.stderr,
        )
        return 2
    for name in args.names:
        try:
            paths = install(name, args.dir, mirror=args.mirror)
        except InstallError as exc:
            print(f"error: {name}: {exc}", file=sys.stderr)
            return 1
        print(f"installed {name} ({models[name].licence}): {', '.join(str(p) for p in paths)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parking-edge", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"parking-edge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=None,
        help="json: one JSON object a line (event lines carry event_id and camera_id); text."
        " Default: $PARKING_EDGE_LOG_FORMAT, else json when stderr is the journal, else text",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one lane from a config file")
    run.add_argument("--config", type=Path, required=True)
    run.add_argument(
        "--exit-when-drained",
        action="store_true",
        help="exit once a finite source has ended and the outbox is empty",
    )
    run.set_defaults(func=cmd_run)

    sim = sub.add_parser("simulate", help="synthetic plate events through the real outbox")
    sim.add_argument("--central", required=True, help="central's (VIP) base URL")
    sim.add_argument("--entry-key", help="API key of the entry camera")
    sim.add_argument("--entry-camera", default="gate-1-in")
    sim.add_argument("--exit-key", help="API key of the exit camera")
    sim.add_argument("--exit-camera", default="gate-1-out")
    sim.add_argument("--camera", action="append", default=[], metavar="ID:DIRECTION=KEY")
    sim.add_argument("--cameras", type=int, help="drive only the first N of those cameras")
    sim.add_argument("--rate", type=float, default=0.5, help="events per second, all cameras")
    sim.add_argument("--count", type=int, help="stop making events after this many")
    sim.add_argument("--duration", type=float, help="stop making events after this many seconds")
    sim.add_argument(
        "--dwell",
        type=float,
        nargs=2,
        default=(20.0, 120.0),
        metavar=("MIN_S", "MAX_S"),
        help="time a vehicle stays before it exits",
    )
    sim.add_argument("--seed", type=int)
    sim.add_argument("--no-snapshots", action="store_true")
    sim.add_argument("--exit-when-drained", action="store_true")
    sim.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("PARKING_EDGE_DATA_DIR", "data/edge"))
    )
    sim.add_argument("--outbox-max-bytes", type=int, default=256 << 20)
    sim.add_argument("--backoff-cap-s", type=float, default=10.0)
    sim.add_argument("--breaker-reset-s", type=float, default=5.0)
    sim.add_argument("--heartbeat-interval-s", type=float, default=10.0)
    sim.add_argument("--metrics-port", type=int, help="serve /metrics on 127.0.0.1:PORT")
    sim.add_argument(
        "--relay-file",
        type=Path,
        help="record each lane's relay pulses as JSON lines in this file (default: log them)",
    )
    sim.add_argument(
        "--no-commands", action="store_true", help="no command channel (long poll) per lane"
    )
    sim.add_argument(
        "--commands-wait-s",
        type=int,
        default=20,
        choices=range(1, MAX_COMMAND_WAIT_S + 1),
        metavar=f"1..{MAX_COMMAND_WAIT_S}",
        help="seconds central holds a command poll open",
    )
    sim.add_argument(
        "--open-pulse-s", type=float, default=1.0, help="relay pulse of an open, in seconds"
    )
    sim.add_argument(
        "--clock-require-sync",
        choices=CLOCK_REQUIREMENTS,
        default="floor",
        help="when the wall clock may stamp events (kernel: adjtimex says synchronised; floor:"
        " at or after 2024-01-01; none); vehicles before that are held",
    )
    sim.add_argument(
        "--clock-max-held", type=int, default=200, help="vehicles held for the clock at most"
    )
    sim.set_defaults(func=cmd_simulate)

    box = sub.add_parser("outbox", help="inspect the outbox")
    box_sub = box.add_subparsers(dest="outbox_command", required=True)
    for name, text in (
        ("stats", "queue figures"),
        ("dead-letters", "list dead letters"),
        ("requeue", "move a dead letter back to the queue"),
    ):
        cmd = box_sub.add_parser(name, help=text)
        where = cmd.add_mutually_exclusive_group()
        where.add_argument("--config", type=Path)
        where.add_argument(
            "--data-dir",
            type=Path,
            default=Path(os.environ.get("PARKING_EDGE_DATA_DIR", DEFAULT_DATA_DIR)),
        )
        if name == "stats":
            cmd.add_argument("--json", action="store_true")
        if name == "requeue":
            cmd.add_argument("id", help="event id or outbox sequence number")
        cmd.set_defaults(func=cmd_outbox)

    offline = sub.add_parser("offline", help="the lists copy and the offline decisions")
    where = offline.add_mutually_exclusive_group()
    where.add_argument("--config", type=Path)
    where.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("PARKING_EDGE_DATA_DIR", DEFAULT_DATA_DIR)),
    )
    offline.add_argument("--json", action="store_true")
    offline.set_defaults(func=cmd_offline)

    check = sub.add_parser("check-config", help="parse and check a config file, run nothing")
    check.add_argument("--config", type=Path, required=True)
    check.set_defaults(func=cmd_check_config)

    camera = sub.add_parser("check-camera", help="grab one frame from the configured source")
    camera.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    camera.add_argument(
        "--output", type=Path, default=Path("check-camera.jpg"), help="where the frame goes"
    )
    camera.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for it")
    camera.set_defaults(func=cmd_check_camera)

    sentry = sub.add_parser(
        "sentry-test", help="send one test error to Sentry as the agent would; prints its id"
    )
    sentry.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    sentry.set_defaults(func=cmd_sentry_test)

    pulse = sub.add_parser("pulse-relay", help="pulse the configured barrier relay once")
    pulse.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    pulse.add_argument("--seconds", type=float, help="pulse length (default: [gate] open_pulse_s)")
    pulse.add_argument("--yes", action="store_true", help="do not ask first")
    pulse.set_defaults(func=cmd_pulse_relay)

    models = sub.add_parser("models", help="optional third-party plate models")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    for name, text in (
        ("list", "the catalogue, and what is installed"),
        ("install", "install models (sha256 checked) from upstream or a mirror folder"),
    ):
        cmd = models_sub.add_parser(name, help=text)
        cmd.add_argument(
            "--dir",
            type=Path,
            default=Path(os.environ.get("PARKING_EDGE_PLATE_MODELS", DEFAULT_PLATE_MODELS)),
            help=f"the plate models folder ([reader] plate_models; default {DEFAULT_PLATE_MODELS})",
        )
        if name == "install":
            cmd.add_argument("names", nargs="+", metavar="NAME", help="catalogue names")
            cmd.add_argument(
                "--mirror", type=Path, help="copy the files from this folder, not the network"
            )
        cmd.set_defaults(func=cmd_models)
    return parser


LONG_RUNNING = frozenset({"run", "simulate"})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in LONG_RUNNING:
        args.stop = _stop_on_signals()  # first: a signal during start-up stops it cleanly too
    configure_logging(
        level=logging.DEBUG if args.verbose else logging.INFO,
        log_format=args.log_format or default_log_format(),
    )
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C in a short command (outbox, offline, check-config)
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
