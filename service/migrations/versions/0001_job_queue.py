"""The job queue: jobs (with leases) and their audit events.

Revision ID: 0001
Revises:
Create Date: 2026-12-04

``IF NOT EXISTS`` throughout: a database made before the schema was under Alembic (by the store's
own ``CREATE`` statements, with a ``schema_version`` table) has these tables already; upgrading it
keeps its jobs and drops ``schema_version``, which ``alembic_version`` replaces.
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE IF NOT EXISTS jobs (
            id TEXT PRIMARY KEY,
            status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
            request TEXT NOT NULL,
            molecules_total INTEGER NOT NULL,
            molecules_done INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at DOUBLE PRECISION NOT NULL,
            started_at DOUBLE PRECISION,
            finished_at DOUBLE PRECISION,
            error_reason TEXT,
            error_message TEXT,
            result TEXT,
            lease_owner TEXT,
            lease_expires_at DOUBLE PRECISION
        )
    """)
    op.execute("CREATE INDEX IF NOT EXISTS jobs_status_created ON jobs (status, created_at)")
    op.execute("""
        CREATE TABLE IF NOT EXISTS job_events (
            id BIGSERIAL PRIMARY KEY,
            job_id TEXT NOT NULL REFERENCES jobs (id),
            at DOUBLE PRECISION NOT NULL,
            event TEXT NOT NULL,
            owner TEXT,
            attempt INTEGER NOT NULL
        )
    """)
    op.execute("CREATE INDEX IF NOT EXISTS job_events_job ON job_events (job_id)")
    op.execute("DROP TABLE IF EXISTS schema_version")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS job_events")
    op.execute("DROP TABLE IF EXISTS jobs")
