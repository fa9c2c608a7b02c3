"""Intake of one manifest file: read it, file it in its own transaction, say what happened.

:func:`file_path` is what ``ccat-hpc file`` and the manifest watcher run for every
manifest. It never raises for a bad manifest: the outcome says FILED, UNCHANGED (the
same manifest was filed before), REJECTED (with a one-line reason; nothing was
written) or DEFERRED (ops-db could not be used; try again later). A concurrent filer
of the same execution or the same files makes the loser retry, and the retry finds
the winner's rows (a no-op or a conflict).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import (
    DatabaseError,
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.db.reasons import operational_error_reason
from ccat_hpc.db.session import transaction
from ccat_hpc.errors import ManifestError
from ccat_hpc.pipeline.filing import FilingResult, file_manifest
from ccat_hpc.pipeline.manifest import Manifest, read_manifest
from ccat_hpc.text import one_line

CONCURRENT_RETRIES = 3


class IntakeStatus(enum.StrEnum):
    FILED = "filed"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"
    DEFERRED = "deferred"


@dataclass(frozen=True)
class IntakeOutcome:
    path: Path
    status: IntakeStatus
    message: str
    result: FilingResult | None = None

    @property
    def rejected(self) -> bool:
        return self.status == IntakeStatus.REJECTED

    @property
    def accepted(self) -> bool:
        return self.status in (IntakeStatus.FILED, IntakeStatus.UNCHANGED)

    def to_json(self) -> dict[str, object]:
        result = self.result
        return {
            "manifest": str(self.path),
            "status": self.status.value,
            "message": self.message,
            "execution": result.execution_id if result else None,
            "files": result.file_count if result else None,
            "bytes": result.total_bytes if result else None,
        }


def _describe(result: FilingResult) -> str:
    return f"{result.file_count} files, {result.total_bytes} bytes, execution {result.execution_id}"


def _database_url(factory: sessionmaker[Session]) -> str | None:
    bind = factory.kw.get("bind")
    return None if bind is None else bind.url.render_as_string(hide_password=False)


def file_path(
    factory: sessionmaker[Session], path: Path, *, follow_links: bool = True
) -> IntakeOutcome:
    """File one manifest file. Never raises for a bad manifest or a database problem.

    ``follow_links=False`` (the watcher's inbox) refuses a manifest that is a link.
    """
    try:
        manifest, digest = read_manifest(path, follow_links=follow_links)
    except ManifestError as exc:
        return IntakeOutcome(path, IntakeStatus.REJECTED, one_line(str(exc)))
    return file_parsed(factory, path, manifest, digest)


def file_parsed(
    factory: sessionmaker[Session],
    path: Path,
    manifest: Manifest,
    digest: str,
    filed_by: str | None = None,
) -> IntakeOutcome:
    """File a manifest read already (the REST API's body), named ``path.name`` in
    ops-db; ``filed_by`` is the API user recorded with the filing. Never raises for a
    bad manifest or a database problem."""
    for attempt in range(CONCURRENT_RETRIES):
        try:
            with transaction(factory) as session:
                result = file_manifest(
                    session, manifest, digest, source_name=path.name[:255], filed_by=filed_by
                )
        except ManifestError as exc:
            return IntakeOutcome(path, IntakeStatus.REJECTED, one_line(str(exc)))
        except IntegrityError as exc:
            if attempt == CONCURRENT_RETRIES - 1:
                return _refused_by_database(path, exc, factory)
            continue
        except DBAPIError as exc:
            return _database_outcome(path, exc, factory)
        status = IntakeStatus.FILED if result.created else IntakeStatus.UNCHANGED
        return IntakeOutcome(path, status, _describe(result), result)
    raise AssertionError("unreachable")


def _reason(exc: DBAPIError, factory: sessionmaker[Session]) -> str:
    return operational_error_reason(exc, _database_url(factory))


def _database_outcome(path: Path, exc: DBAPIError, factory: sessionmaker[Session]) -> IntakeOutcome:
    """Deferred when ops-db cannot be used (try later); rejected when it refused the values."""
    if isinstance(exc, DataError | IntegrityError):
        return _refused_by_database(path, exc, factory)
    transient = isinstance(exc, OperationalError | ProgrammingError) or exc.connection_invalidated
    if transient or not isinstance(exc, DatabaseError):
        message = f"ops-db unavailable: {_reason(exc, factory)}"
        return IntakeOutcome(path, IntakeStatus.DEFERRED, one_line(message))
    return _refused_by_database(path, exc, factory)


def _refused_by_database(
    path: Path, exc: DBAPIError, factory: sessionmaker[Session]
) -> IntakeOutcome:
    message = f"ops-db refused the manifest's values: {_reason(exc, factory)}"
    return IntakeOutcome(path, IntakeStatus.REJECTED, one_line(message))
