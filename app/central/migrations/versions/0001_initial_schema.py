"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 06:31:05.649849
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)

    op.create_table(
        "lots",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("capacity >= 0", name=op.f("ck_lots_capacity_non_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lots")),
    )
    op.create_table(
        "operators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("username", name=op.f("uq_operators_username")),
    )
    op.create_table(
        "anomalies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("lot_id", sa.String(length=64), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=True),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column("session_id", sa.Integer(), nullable=True),
        sa.Column("plate", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_anomalies_lot_id_lots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anomalies")),
    )
    with op.batch_alter_table("anomalies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_anomalies_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_anomalies_kind"), ["kind"], unique=False)

    op.create_table(
        "cameras",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("lot_id", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("api_key_hash", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_health", sa.JSON(), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("events_received", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_cameras_lot_id_lots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cameras")),
        sa.UniqueConstraint("api_key_hash", name=op.f("uq_cameras_api_key_hash")),
    )
    with op.batch_alter_table("cameras", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cameras_lot_id"), ["lot_id"], unique=False)

    op.create_table(
        "list_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plate_normalized", sa.String(length=16), nullable=False),
        sa.Column("plate_display", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("lot_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_list_entries_lot_id_lots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_entries")),
    )
    with op.batch_alter_table("list_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_list_entries_plate_kind", ["plate_normalized", "kind"], unique=False
        )

    op.create_table(
        "parking_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lot_id", sa.String(length=64), nullable=False),
        sa.Column("plate_normalized", sa.String(length=16), nullable=False),
        sa.Column("plate_display", sa.String(length=20), nullable=False),
        sa.Column("vehicle_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("entry_event_id", sa.Uuid(), nullable=True),
        sa.Column("exit_event_id", sa.Uuid(), nullable=True),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exit_plate", sa.String(length=20), nullable=True),
        sa.Column("fee", sa.Integer(), nullable=True),
        sa.Column("fee_basis", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["lots.id"], name=op.f("fk_parking_sessions_lot_id_lots")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parking_sessions")),
    )
    with op.batch_alter_table("parking_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_parking_sessions_lot_status", ["lot_id", "status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_parking_sessions_plate_normalized"), ["plate_normalized"], unique=False
        )
        batch_op.create_index(
            "uq_parking_sessions_open_plate",
            ["lot_id", "plate_normalized"],
            unique=True,
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plate_normalized", sa.String(length=16), nullable=False),
        sa.Column("plate_display", sa.String(length=20), nullable=False),
        sa.Column("lot_id", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_subscriptions_lot_id_lots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_subscriptions_plate_lot", ["plate_normalized", "lot_id"], unique=False
        )

    op.create_table(
        "tariffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lot_id", sa.String(length=64), nullable=False),
        sa.Column("vehicle_type", sa.String(length=16), nullable=False),
        sa.Column("free_minutes", sa.Integer(), nullable=False),
        sa.Column("hourly_rate", sa.Integer(), nullable=False),
        sa.Column("daily_cap", sa.Integer(), nullable=False),
        sa.Column("overnight_fee", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "free_minutes >= 0 AND hourly_rate >= 0 AND daily_cap >= 0 AND overnight_fee >= 0",
            name=op.f("ck_tariffs_non_negative"),
        ),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_tariffs_lot_id_lots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tariffs")),
        sa.UniqueConstraint("lot_id", "vehicle_type", name=op.f("uq_tariffs_lot_id")),
    )
    op.create_table(
        "plate_events",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("lot_id", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("plate", sa.String(length=20), nullable=False),
        sa.Column("plate_normalized", sa.String(length=16), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("vehicle_type", sa.String(length=16), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=True),
        sa.Column("ack", sa.JSON(), nullable=False),
        sa.Column("has_snapshot", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["cameras.id"], name=op.f("fk_plate_events_camera_id_cameras")
        ),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_plate_events_lot_id_lots")),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_plate_events")),
    )
    with op.batch_alter_table("plate_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_plate_events_camera_captured", ["camera_id", "captured_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_plate_events_plate_normalized"), ["plate_normalized"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_plate_events_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "snapshots",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("jpeg", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["plate_events.event_id"],
            name=op.f("fk_snapshots_event_id_plate_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_snapshots")),
    )
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_snapshots_created_at"), ["created_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snapshots_created_at"))

    op.drop_table("snapshots")
    with op.batch_alter_table("plate_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plate_events_received_at"))
        batch_op.drop_index(batch_op.f("ix_plate_events_plate_normalized"))
        batch_op.drop_index("ix_plate_events_camera_captured")

    op.drop_table("plate_events")
    op.drop_table("tariffs")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_subscriptions_plate_lot")

    op.drop_table("subscriptions")
    with op.batch_alter_table("parking_sessions", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_parking_sessions_open_plate",
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )
        batch_op.drop_index(batch_op.f("ix_parking_sessions_plate_normalized"))
        batch_op.drop_index("ix_parking_sessions_lot_status")

    op.drop_table("parking_sessions")
    with op.batch_alter_table("list_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_list_entries_plate_kind")

    op.drop_table("list_entries")
    with op.batch_alter_table("cameras", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cameras_lot_id"))

    op.drop_table("cameras")
    with op.batch_alter_table("anomalies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_anomalies_kind"))
        batch_op.drop_index(batch_op.f("ix_anomalies_created_at"))

    op.drop_table("anomalies")
    op.drop_table("operators")
    op.drop_table("lots")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))
        batch_op.drop_index(batch_op.f("ix_audit_log_action"))

    op.drop_table("audit_log")
