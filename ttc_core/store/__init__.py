"""Persistence: the SQLAlchemy models, the engine's queries, the event log."""
