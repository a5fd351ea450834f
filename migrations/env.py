"""Alembic environment: runs on the connection handed in by experiments.db, or on the configured URL."""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from experiments.config import database_url
from experiments.db import make_engine
from experiments.models import Base

config = context.config
target_metadata = Base.metadata


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    # Called from the `alembic` command line: configure logging from alembic.ini, like Alembic does.
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)
    engine = make_engine(database_url())
    with engine.begin() as conn:
        run_on(conn)


if context.is_offline_mode():
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
