"""What every command gets: the ops-db URL and, built on first use, its engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

from ccat_hpc.config import resolve_db_url

if TYPE_CHECKING:  # SQLAlchemy is imported only by commands that use ops-db
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker


@dataclass
class AppContext:
    db_option: str | None
    verbose: bool = False
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def db_url(self) -> str:
        return resolve_db_url(self.db_option)

    def engine(self) -> Engine:
        from ccat_hpc.db.session import make_engine

        if self._engine is None:
            self._engine = make_engine(self.db_url)
        return self._engine

    def sessions(self) -> sessionmaker[Session]:
        from ccat_hpc.db.session import make_session_factory

        return make_session_factory(self.engine())

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


pass_app = click.make_pass_decorator(AppContext)
