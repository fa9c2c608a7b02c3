"""The schema revision this ccat-hpc needs (checked by every command that uses ops-db).

Bump it with every new migration: ``tests/integration/test_migrations.py`` fails while
it differs from the newest revision in ``ccat_hpc/db/migrations/versions``.
"""

SCHEMA_HEAD = "0009"
