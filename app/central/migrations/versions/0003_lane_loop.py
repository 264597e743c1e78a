"""the lane's loop: lane commands, payments, held exits, manual sessions, lot rules

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lots", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("exit_grace_minutes", sa.Integer(), nullable=False, server_default="15")
        )
        batch_op.add_column(
            sa.Column("lost_ticket_fee", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("max_stay_hours", sa.Integer(), nullable=False, server_default="72")
        )
    with op.batch_alter_table("cameras", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("commands_poll_until", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("parking_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("paid_amount", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("exit_held_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("exit_held_camera_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("manual_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("manual_reason", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("snapshot_event_id", sa.Uuid(), nullable=True))

    op.create_table(
        "lane_commands",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("lot_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("edge_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detail", sa.String(length=300), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=True),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["cameras.id"], name=op.f("fk_lane_commands_camera_id_cameras")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lane_commands")),
    )
    with op.batch_alter_table("lane_commands", schema=None) as batch_op:
        batch_op.create_index(
            "ix_lane_commands_camera_status", ["camera_id", "status"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_lane_commands_issued_at"), ["issued_at"], unique=False)

    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("lot_id", sa.String(length=64), nullable=False),
        sa.Column("due", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=True),
        sa.Column("command_id", sa.Uuid(), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_payments_lot_id_lots")),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["parking_sessions.id"],
            name=op.f("fk_payments_session_id_parking_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_paid_at"), ["paid_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_payments_session_id"), ["session_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_session_id"))
        batch_op.drop_index(batch_op.f("ix_payments_paid_at"))
    op.drop_table("payments")
    with op.batch_alter_table("lane_commands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lane_commands_issued_at"))
        batch_op.drop_index("ix_lane_commands_camera_status")
    op.drop_table("lane_commands")
    with op.batch_alter_table("parking_sessions", schema=None) as batch_op:
        for column in (
            "snapshot_event_id",
            "manual_reason",
            "manual_by",
            "exit_held_camera_id",
            "exit_held_at",
            "paid_at",
            "paid_amount",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("cameras", schema=None) as batch_op:
        batch_op.drop_column("commands_poll_until")
    with op.batch_alter_table("lots", schema=None) as batch_op:
        batch_op.drop_column("max_stay_hours")
        batch_op.drop_column("lost_ticket_fee")
        batch_op.drop_column("exit_grace_minutes")
