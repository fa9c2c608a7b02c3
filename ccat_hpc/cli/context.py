"""What every command gets: the ops-db URL and, built on first use, its engine.

``engine()`` never creates a SQLite file (a missing one is "no ops-db at PATH"); only
commands that set ops-db up ask for ``engine(create=True)``. ``sessions()`` checks
once that ops-db's schema is the one this ccat-hpc needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

from ccat_hpc.config import redact_url, resolve_db_url
from ccat_hpc.errors import ConfigError

if TYPE_CHECKING:  # SQLAlchemy is imported only by commands that use ops-db
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from ccat_hpc.client import ApiClient


@dataclass
class AppContext:
    db_option: str | None = None
    verbose: bool = False
    #: the REST API to use instead of ops-db (``--api``), and where its token is
    api_url: str | None = None
    token_file: str | None = None
    _engine: Engine | None = field(default=None, repr=False)
    _schema_checked: bool = field(default=False, repr=False)

    @property
    def db_url(self) -> str:
        """The ops-db URL in use, checked and %-encoded (ConfigError if it is invalid)."""
        return resolve_db_url(self.db_option)

    def shown_db_url(self) -> str:
        """The ops-db URL for messages: without its password, and never raising."""
        try:
            return redact_url(self.db_url)
        except ConfigError:
            return "(an invalid ops-db URL)"

    def engine(self, create: bool = False) -> Engine:
        """The engine of ops-db; a SQLite file is created only with ``create=True``."""
        from ccat_hpc.db.session import make_engine

        if self._engine is None:
            self._engine = make_engine(self.db_url, create=create)
        return self._engine

    def sessions(self) -> sessionmaker[Session]:
        """Sessions on ops-db, once its schema has been found current."""
        from ccat_hpc.db.session import check_schema, make_session_factory

        engine = self.engine()
        if not self._schema_checked:
            check_schema(engine, self.shown_db_url())
            self._schema_checked = True
        return make_session_factory(engine)

    def api_client(self) -> ApiClient | None:
        """A client of the REST API when ``--api`` (or $CCAT_HPC_API) names one."""
        if not self.api_url:
            return None
        from ccat_hpc.client import ApiClient, read_token

        return ApiClient(self.api_url, read_token(self.token_file))

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


pass_app = click.make_pass_decorator(AppContext)
