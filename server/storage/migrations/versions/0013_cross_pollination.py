"""Cross-pollination: how many statements of other rooms each room also votes on (``deliberations.cross_pollination``;
NULL: the default), and which statements were shared into which room (``shared_statements``)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_cross_pollination"
down_revision = "0012_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliberations") as deliberations:
        deliberations.add_column(sa.Column("cross_pollination", sa.Integer(), nullable=True))
    op.create_table(
        "shared_statements",
        sa.Column("room_id", sa.String(32), sa.ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("statement_id", sa.String(80), sa.ForeignKey("statements.statement_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("shared_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("shared_statements")
    with op.batch_alter_table("deliberations") as deliberations:
        deliberations.drop_column("cross_pollination")
