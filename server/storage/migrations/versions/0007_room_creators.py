"""Stand-alone rooms remember who created them (they, and administrators, moderate and review them)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_room_creators"
down_revision = "0006_audit_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rooms") as rooms:
        rooms.add_column(sa.Column("created_by", sa.String(32), nullable=True))
        rooms.create_foreign_key("fk_rooms_created_by", "users", ["created_by"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("rooms") as rooms:
        rooms.drop_constraint("fk_rooms_created_by", type_="foreignkey")
        rooms.drop_column("created_by")
