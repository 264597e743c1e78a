"""All of central's settings, read once from the environment (prefix ``PARKING_``)."""

from __future__ import annotations

import importlib.metadata
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.central import __version__

MAX_RETENTION_DAYS = 36_500
Days = Annotated[int, Field(ge=0, le=MAX_RETENTION_DAYS)]
RETENTION_KINDS = (
    "snapshots",
    "events",
    "sessions",
    "payments",
    "audit",
    "offline_decisions",
    "lane_commands",
    "anomalies",
)


def default_release(distribution: str = "parking-central") -> str:
    """``parking-central@<version>`` of the installed wheel; the source tree's version when
    central runs from a checkout (no such distribution installed)."""
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        version = __version__
    return f"{distribution}@{version}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARKING_", extra="ignore")

    environment: str = "development"
    data_dir: Path = Path("data")
    # Default: SQLite under data_dir. Production: a PostgreSQL URL listing every Patroni host,
    # e.g. postgresql+psycopg://parking:***@/parking?host=db1:5432&host=db2:5432&target_session_attrs=read-write
    database_url: str | None = None
    worker_threads: int = Field(default=8, ge=1, le=200)
    db_pool_size: int = Field(default=20, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    db_pool_timeout_s: float = Field(default=2.0, gt=0)
    db_connect_timeout_s: int = Field(default=2, ge=1)
    db_statement_timeout_ms: int = Field(default=5000, ge=100)
    # A transaction left open this long without a statement is ended by the server: a central
    # cut off (or killed) mid-transaction must not hold its row locks until TCP gives up.
    db_idle_in_transaction_timeout_ms: int = Field(default=60_000, ge=1000)
    # TCP on central's own database connections: keepalive probes on an idle link, and how
    # long sent data may stay unacknowledged before the connection is dropped (a cut link fails
    # a query in seconds instead of the kernel's ~15 minutes of retransmissions).
    db_keepalives_idle_s: int = Field(default=10, ge=1)
    db_tcp_user_timeout_ms: int = Field(default=15_000, ge=1000)
    retry_after_s: int = Field(default=2, ge=1, description="Retry-After on 503")

    jwt_secret: SecretStr | None = None
    jwt_ttl_s: int = Field(default=1800, ge=60)
    jwt_algorithm: Literal["HS256"] = "HS256"

    camera_offline_after_s: int = Field(default=300, ge=10)
    # Deprecated spelling of retention_snapshots_days (PARKING_SNAPSHOT_RETENTION_DAYS), still
    # honoured when the new one is not set.
    snapshot_retention_days: int | None = Field(default=None, ge=0, le=MAX_RETENTION_DAYS)
    duty_interval_s: float = Field(default=15.0, gt=0)
    # On PostgreSQL: a duties leader whose lock connection has been silent this long (it ticks
    # once per interval) is taken to be gone (a central cut off without closing its connection)
    # and its session is ended by the next central that wants the duties. At least three ticks.
    duty_takeover_after_s: float = Field(default=90.0, gt=0)
    low_confidence: float = Field(default=0.6, ge=0, le=1)
    # Events captured longer ago than this are refused (422): the lane's clock is wrong.
    event_max_age_days: int = Field(default=30, ge=1, le=3650)
    # A lane command (open the barrier) not executed within this many seconds never is.
    command_ttl_s: float = Field(default=10.0, gt=0, le=60)
    timezone: str = "Asia/Ho_Chi_Minh"

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Ingest batches one process writes at once (events/combiner.py; SQLite: always 1). One
    # measured best on PostgreSQL: bigger batches, no two transactions of one process racing
    # for the lot's counter row (docs/ingest-performance.md, fourth step).
    ingest_concurrency: int = Field(default=1, ge=1, le=8)
    camera_rate_per_s: float = Field(default=50.0, gt=0)
    camera_burst: int = Field(default=200, ge=1)
    login_attempts_per_min: int = Field(default=10, ge=1)
    # Failed logins and unknown camera keys one client address may cause per minute, across
    # every name it tries (the per-name login limit alone lets one client try many names).
    client_failures_per_min: int = Field(default=30, ge=1)
    # Addresses (comma-separated, CIDR allowed) whose X-Forwarded-For central believes: the
    # load balancers, and nothing else. Empty: the connection's own address is the client.
    trusted_proxies: str = ""

    # Retention (issue 19): days each kind of record is kept; 0 (or empty) keeps it forever.
    # Payments are accounting records: kept longest, and the sessions they belong to are kept
    # with them, plate erased, until they go (see docs/privacy.md).
    retention_snapshots_days: Days = 30
    retention_events_days: Days = 180
    retention_sessions_days: Days = 730
    retention_payments_days: Days = 3650
    retention_audit_days: Days = 730
    retention_offline_decisions_days: Days = 180
    retention_lane_commands_days: Days = 90
    retention_anomalies_days: Days = 365
    # The retention duty runs this often (on the duties' leader only), deleting at most
    # retention_batch_size rows per transaction and retention_max_batches per kind per run.
    retention_interval_s: float = Field(default=3600.0, ge=1, le=7 * 86400)
    retention_batch_size: int = Field(default=1000, ge=1, le=100_000)
    retention_max_batches: int = Field(default=100, ge=1, le=100_000)

    log_level: str = "INFO"
    log_file: Path | None = None
    log_json: bool = True

    # Errors (and, at sentry_traces_sample_rate, request traces) go to Sentry when a DSN is set.
    # The release defaults to the installed package's version; roles/central sets
    # PARKING_RELEASE to parking-central@<version>+<release id> (the wheel it installed).
    sentry_dsn: str | None = None
    sentry_traces_sample_rate: float = Field(default=0.0, ge=0, le=1)
    release: str = Field(default_factory=default_release)

    # HTTPS on central's own port (the cluster: nginx -> central over TLS). With a client CA,
    # a client must show a certificate that CA signed (the load balancers, Prometheus).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None

    ws_ping_interval_s: float = Field(default=20.0, gt=0)
    # A live feed asks again this often whether its operator is still active (and its token
    # valid): a disabled operator stops receiving plates within this many seconds.
    live_recheck_s: float = Field(default=15.0, gt=0)

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value

    @field_validator(
        "snapshot_retention_days", *(f"retention_{kind}_days" for kind in RETENTION_KINDS),
        mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_is_forever(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None if info.field_name == "snapshot_retention_days" else 0
        return value

    @model_validator(mode="after")
    def _old_snapshot_retention(self) -> Settings:
        if (
            self.snapshot_retention_days is not None
            and "retention_snapshots_days" not in self.model_fields_set
        ):
            self.retention_snapshots_days = self.snapshot_retention_days
        return self

    def retention_days(self, kind: str) -> int:
        """Days ``kind`` (one of RETENTION_KINDS) is kept; 0: forever."""
        days: int = getattr(self, f"retention_{kind}_days")
        return days

    @model_validator(mode="after")
    def _duty_takeover(self) -> Settings:
        if self.duty_takeover_after_s < 3 * self.duty_interval_s:
            raise ValueError(
                "PARKING_DUTY_TAKEOVER_AFTER_S must be at least three duty ticks"
                f" (3 x PARKING_DUTY_INTERVAL_S = {3 * self.duty_interval_s:g} s)"
            )
        return self

    @model_validator(mode="after")
    def _tls(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("PARKING_TLS_CERT_FILE and PARKING_TLS_KEY_FILE go together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("PARKING_TLS_CLIENT_CA_FILE needs PARKING_TLS_CERT_FILE")
        for name in ("tls_cert_file", "tls_key_file", "tls_client_ca_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"PARKING_{name.upper()}: {path} is not a readable file")
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'parking.db').resolve()}"

    @property
    def is_postgres(self) -> bool:
        return self.effective_database_url.startswith("postgresql")

    def jwt_key(self) -> str:
        """The signing key: from the environment, else generated once into the data dir."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        path = self.data_dir / "jwt-secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48))
        return path.read_text().strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
