"""``parking-central``: serve, migrate, migrate-sqlite, create-user, create-camera,
rotate-camera-key, camera-status, demo.

Every subcommand reads the same settings from the environment (``PARKING_*``), so they all
see the same database.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from app.central.settings import Settings, get_settings

if TYPE_CHECKING:
    from app.central.demo_cashier import DemoCashier
    from app.central.server import TLSFiles


def _database(settings: Settings):  # type: ignore[no-untyped-def]
    from app.central.db import Database

    return Database(settings)


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    from app.central.migrate import upgrade

    upgrade(settings.effective_database_url)
    print(f"database at head: {_redacted(settings.effective_database_url)}", file=sys.stderr)
    return 0


def cmd_migrate_sqlite(_: Settings, args: argparse.Namespace) -> int:
    """Copy a SQLite file into PostgreSQL (docs/migrate-sqlite.md)."""
    from app.central.migrate_sqlite import MigrationError, migrate_sqlite, redacted, target_url

    try:
        report = migrate_sqlite(Path(args.sqlite_file), args.to, batch=args.batch_size)
    except MigrationError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return error.exit_code
    for table in report.tables:
        print(f"verified {table.name:<18} {table.rows:>9} rows  sha256-sum {table.checksum[:16]}")
    print(
        f"migrated {args.sqlite_file} -> {redacted(target_url(args.to))} at revision "
        f"{report.revision}: {report.copied} rows copied, {report.skipped} already there, "
        f"{report.derived} derived rows rebuilt by the target and compared",
        file=sys.stderr,
    )
    return 0


def _tls_files(settings: Settings) -> TLSFiles | None:
    from app.central.server import TLSFiles

    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    client_ca = settings.tls_client_ca_file
    return TLSFiles(
        cert_file=str(settings.tls_cert_file),
        key_file=str(settings.tls_key_file),
        client_ca_file=str(client_ca) if client_ca else None,
    )


def cmd_serve(
    settings: Settings, args: argparse.Namespace, before_shutdown: Callable[[], None] | None = None
) -> int:
    from app.central.server import serve

    workers = getattr(args, "workers", 1)
    if workers > 1 and not settings.is_postgres:
        print(
            "error: --workers > 1 needs PostgreSQL (on SQLite the live feed is in-process "
            "and there is one writer anyway)",
            file=sys.stderr,
        )
        return 2
    if workers > 1:
        # Each worker process builds its own app from the same environment.
        serve(
            None,
            host=args.host,
            port=args.port,
            ws_ping_interval_s=settings.ws_ping_interval_s,
            workers=workers,
            trusted_proxies=settings.trusted_proxies,
            tls=_tls_files(settings),
        )
        return 0
    from app.central.main import create_app

    serve(
        create_app(settings),
        host=args.host,
        port=args.port,
        ws_ping_interval_s=settings.ws_ping_interval_s,
        trusted_proxies=settings.trusted_proxies,
        tls=_tls_files(settings),
        before_shutdown=before_shutdown,
    )
    return 0


def cmd_create_user(settings: Settings, args: argparse.Namespace) -> int:
    from app.central.errors import DomainError
    from app.central.operators.service import create_operator

    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    db = _database(settings)
    try:
        with db.session() as session:
            create_operator(session, username=args.name, password=password, role=args.role)
    except DomainError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    print(f"created {args.role} {args.name}", file=sys.stderr)
    return 0


def cmd_create_camera(settings: Settings, args: argparse.Namespace) -> int:
    from app.central.cameras.service import create_camera
    from app.central.errors import DomainError

    db = _database(settings)
    try:
        with db.session() as session:
            _, api_key = create_camera(
                session,
                camera_id=args.id,
                lot_id=args.lot,
                direction=args.direction,
                name=args.name or "",
            )
    except DomainError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    print(api_key)  # the only line on stdout, shown once; only its hash is stored
    return 0


def cmd_rotate_camera_key(settings: Settings, args: argparse.Namespace) -> int:
    from app.central.cameras.service import rotate_key
    from app.central.errors import DomainError

    db = _database(settings)
    try:
        with db.session() as session:
            api_key = rotate_key(session, camera_id=args.id, actor="cli")
    except DomainError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    print(api_key)  # the new key, shown once; the old one stops working (within 5 s)
    return 0


def cmd_camera_status(settings: Settings, args: argparse.Namespace) -> int:
    """One JSON line: the camera's last heartbeat as central holds it (rollouts wait on it)."""
    import json

    from app.central.cameras.service import camera_status
    from app.central.clock import utcnow
    from app.central.errors import DomainError

    db = _database(settings)
    try:
        with db.read_session() as session:
            status = camera_status(
                session,
                camera_id=args.id,
                now=utcnow(),
                offline_after_s=settings.camera_offline_after_s,
            )
    except DomainError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    print(json.dumps(status, sort_keys=True))
    return 0


def cmd_sentry_test(settings: Settings, _: argparse.Namespace) -> int:
    """Send one test error to Sentry as the server would (its DSN, release, environment) and
    print its event id: on-call checks that errors reach them after a deploy."""
    import json
    import socket

    from app.central.main import init_sentry
    from app.contract.sentry import send_test_error

    if not init_sentry(settings):
        print("error: no Sentry DSN is configured (PARKING_SENTRY_DSN)", file=sys.stderr)
        return 2
    event_id = send_test_error(f"parking-central sentry-test on {socket.gethostname()}")
    answer = {"event_id": event_id, "release": settings.release}
    print(json.dumps({**answer, "environment": settings.environment}, sort_keys=True))
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """Migrate the embedded database, seed the demo lot, print credentials, run everything."""
    from app.central.demo import seed
    from app.central.migrate import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)
    db = _database(settings)
    with db.session() as session:
        creds = seed(session, data_dir=settings.data_dir)
    db.dispose()
    url = f"http://{args.host}:{args.port}"
    print(f"\nParking 24/7 demo: dashboard and API on {url}  (API docs: {url}/docs)")
    print(f"database: {_redacted(settings.effective_database_url)}")
    for name, user in creds["users"].items():
        print(f"  login {name:<8} password {user['password']:<14} role {user['role']}")
    print(f"credentials kept in {settings.data_dir / 'demo-credentials.json'}\n", flush=True)

    edge_bin = shutil.which("parking-edge", path=str(Path(sys.executable).parent))
    edges = _DemoEdges(edge_bin, settings=settings, url=url, creds=creds)
    cashier = None
    if edge_bin and not args.no_edge:
        # The edges and the cashier start once central answers (no "connection refused" noise).
        threading.Thread(target=edges.start_when_up, args=(url,), daemon=True).start()
        cashier = _start_cashier(url, creds)

    def stop_lanes() -> None:  # Ctrl-C: the lanes stop first, while central still answers
        if cashier is not None:
            cashier.close()
        edges.stop()

    try:
        return cmd_serve(settings, args, before_shutdown=stop_lanes)
    except KeyboardInterrupt:
        return 0  # Ctrl-C: stopped on purpose; the edges and the cashier stop below
    finally:
        if cashier is not None:
            cashier.close()
        edges.stop()
        print("demo stopped", file=sys.stderr, flush=True)


def _start_cashier(url: str, creds: dict[str, dict[str, dict[str, str]]]) -> DemoCashier | None:
    from app.central.demo_cashier import DemoCashier

    user = creds["users"].get("cashier")
    if user is None:
        return None
    cashier = DemoCashier(url, "cashier", user["password"])
    cashier.start()
    return cashier


class _DemoEdges:
    """The demo's edge agents (app/central/demo_edge.py), through the real outbox and uploader;
    a lane with a delay starts later (gate 2's exit replays its entry's pictures)."""

    def __init__(
        self,
        edge_bin: str | None,
        *,
        settings: Settings,
        url: str,
        creds: dict[str, dict[str, dict[str, str]]],
    ) -> None:
        from app.central.demo_edge import edge_commands

        self._edges = (
            edge_commands(edge_bin, data_dir=settings.data_dir, url=url, creds=creds)
            if edge_bin
            else []
        )
        self._running: list[subprocess.Popen[bytes]] = []
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()
        self._stopped = False

    def start_when_up(self, url: str, timeout_s: float = 60.0) -> None:
        import time

        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._stopped:
            try:
                if httpx.get(f"{url}/api/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.start()

    def start(self) -> None:
        for edge in self._edges:
            when = f" (in {edge.delay_s:.0f} s)" if edge.delay_s else ""
            print(f"edge: {' '.join(edge.command[:4])} ...{when}", flush=True)
            if edge.delay_s:
                timer = threading.Timer(edge.delay_s, self._launch, args=(edge.command,))
                timer.daemon = True
                timer.start()
                self._timers.append(timer)
            else:
                self._launch(edge.command)

    def _launch(self, command: list[str]) -> None:
        with self._lock:
            if self._stopped:
                return
            # Its own process group: the terminal's Ctrl-C reaches central alone, which then
            # stops the edges in order (each drains nothing and exits on SIGTERM).
            self._running.append(
                subprocess.Popen(command, env={**os.environ}, start_new_session=True)
            )

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        for timer in self._timers:
            timer.cancel()
        for edge in self._running:
            if edge.poll() is None:
                edge.send_signal(signal.SIGTERM)
        for edge in self._running:
            try:
                edge.wait(timeout=15)
            except subprocess.TimeoutExpired:
                edge.kill()


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parking-central", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="worker processes on one socket (PostgreSQL only; default 1)",
    )
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="upgrade the database schema to head")
    migrate.set_defaults(func=cmd_migrate)

    copy = sub.add_parser(
        "migrate-sqlite",
        help="copy a SQLite database into PostgreSQL (schema, data, verification)",
    )
    copy.add_argument("sqlite_file", metavar="SQLITE_FILE")
    copy.add_argument("--to", required=True, metavar="URL", help="postgresql+psycopg://...")
    copy.add_argument("--batch-size", type=int, default=500, help="rows per INSERT batch")
    copy.set_defaults(func=cmd_migrate_sqlite)

    user = sub.add_parser("create-user", help="create an operator; password on stdin")
    user.add_argument("name")
    user.add_argument("--role", choices=["guard", "manager", "admin"], required=True)
    user.set_defaults(func=cmd_create_user)

    camera = sub.add_parser(
        "create-camera", help="register a camera; prints only its API key, once"
    )
    camera.add_argument("id")
    camera.add_argument("--lot", required=True)
    camera.add_argument("--direction", choices=["entry", "exit"], required=True)
    camera.add_argument("--name")
    camera.set_defaults(func=cmd_create_camera)

    rotate = sub.add_parser(
        "rotate-camera-key", help="give a camera a new API key; prints only the key, once"
    )
    rotate.add_argument("id")
    rotate.set_defaults(func=cmd_rotate_camera_key)

    status = sub.add_parser(
        "camera-status", help="a camera's last heartbeat and health, as one JSON line"
    )
    status.add_argument("id")
    status.set_defaults(func=cmd_camera_status)

    sentry = sub.add_parser(
        "sentry-test", help="send one test error to Sentry as the server would; prints its id"
    )
    sentry.set_defaults(func=cmd_sentry_test)

    demo = sub.add_parser("demo", help="migrate, seed, and run central + a simulated edge")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--no-edge", action="store_true", help="do not start the simulated edge")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValueError as error:  # pydantic ValidationError names the bad PARKING_* variable
        print(f"invalid settings: {error}", file=sys.stderr)
        return 2
    result: int = args.func(settings, args)
    return result


if __name__ == "__main__":
    sys.exit(main())
