"""Alembic environment: the engine comes from ``config.attributes`` (see ``store/migrate.py``)."""

from alembic import context

from visionloop.store.tables import Base

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
