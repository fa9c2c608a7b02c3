from pathlib import Path

from ccat_hpc.config import normalize_db_url, redact_url, resolve_db_url


def test_postgres_urls_use_psycopg3() -> None:
    assert normalize_db_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_db_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_db_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


def test_bare_path_is_a_sqlite_file(tmp_path: Path) -> None:
    assert normalize_db_url("ops.sqlite", cwd=tmp_path) == f"sqlite:///{tmp_path}/ops.sqlite"
    assert normalize_db_url("/abs/ops.sqlite") == "sqlite:////abs/ops.sqlite"


def test_option_beats_environment_beats_default(tmp_path: Path) -> None:
    env = {"CCAT_HPC_DB": "postgresql://env/db"}
    assert resolve_db_url("postgresql://opt/db", env) == "postgresql+psycopg://opt/db"
    assert resolve_db_url(None, env) == "postgresql+psycopg://env/db"
    assert resolve_db_url(None, {}, cwd=tmp_path) == f"sqlite:///{tmp_path}/ccat-hpc.sqlite"


def test_passwords_are_redacted() -> None:
    assert redact_url("postgresql://ops:secret@h/db") == "postgresql://ops:***@h/db"
    assert redact_url("postgresql://ops@h/db") == "postgresql://ops@h/db"


def test_lock_key_is_a_signed_64_bit_integer() -> None:
    import uuid

    from ccat_hpc.db.bulk import lock_key

    for value in (0, 1, (1 << 128) - 1, 1 << 127, (1 << 63) << 64):
        key = lock_key(uuid.UUID(int=value))
        assert -(1 << 63) <= key < (1 << 63)
    assert lock_key(uuid.UUID(int=5 << 64)) == 5
    assert lock_key(uuid.UUID(int=(1 << 128) - 1)) == -1
