"""ops-db: models, state machines, sessions and migrations."""
