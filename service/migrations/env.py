"""Alembic environment of the PostgreSQL job queue (``service.job_store_postgres``).

Runs on the connection the store hands over in ``config.attributes["connection"]``, inside the
transaction that holds the schema advisory lock, so servers and workers starting together migrate
once. Revisions are plain SQL (``versions/``): the store's queries are SQL too, no ORM models.
"""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
