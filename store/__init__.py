"""The system of record: SQLAlchemy tables, the repository, the hash-chained audit log."""
