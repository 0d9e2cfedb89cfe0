"""Storage: SQLAlchemy tables and sessions, the content-addressed blob store, vector indexes."""
