"""The error tree of ccat-hpc.

Every error the system expects to meet is a :class:`CcatHpcError`; the CLI turns it
into one clear line and the exit code below. Anything else is a bug and is shown as
an internal error (with the traceback under ``--verbose``).
"""

from __future__ import annotations

#: Every exit code of ``ccat-hpc`` and its meaning (listed by ``ccat-hpc --help``).
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "success"),
    (1, "work done but problems found (e.g. corrupt files, a failed task)"),
    (2, "usage error (a wrong option or argument, or a refused confirmation)"),
    (3, "config error (a site config, catalog or setting such as --db is invalid)"),
    (4, "not found"),
    (5, "manifest rejected"),
    (6, "ops-db unusable (unreachable, locked, missing, or no or another schema)"),
    (7, "package error"),
    (8, "batch system error"),
    (9, "storage error (a buffer or archive could not be read or written)"),
    (10, "refused: a staging request would exceed the user's quota"),
    (70, "internal error (a bug: please report it with the --verbose output)"),
    (75, "timed out (stage wait --timeout: the request is not READY yet)"),
    (130, "interrupted (Ctrl-C)"),
    (143, "terminated (SIGTERM: a time limit or a cancel); what was done is recorded"),
)
INTERNAL_ERROR = 70
INTERRUPTED = 130
TERMINATED = 143


class Terminated(BaseException):
    """SIGTERM arrived: unwind (finally blocks, rollbacks, giving claims back) and exit 143."""


class CcatHpcError(Exception):
    """Root of every expected ccat-hpc error."""

    exit_code = 1


class UsageError(CcatHpcError):
    """The command was asked for something it cannot do as asked (a wrong argument)."""

    exit_code = 2


class StateConflict(UsageError):
    """What was asked does not fit the thing's state now (a paused campaign paused again,
    a request being staged); the REST API answers 409."""


class ConfigError(CcatHpcError):
    """A site config, catalog or setting is invalid; the message names file and key."""

    exit_code = 3


class NotFoundError(CcatHpcError):
    """A named entity (location, instrument, obs unit, ...) does not exist in ops-db."""

    exit_code = 4


class ManifestError(CcatHpcError):
    """A manifest was rejected: nothing of it was written to ops-db."""

    exit_code = 5


class ManifestConflict(ManifestError):
    """A manifest reuses an execution id with content that differs from what was filed."""


class InvalidStateTransition(CcatHpcError):
    """Code asked for a state change that the entity's state machine does not allow."""


class DatabaseUnavailable(CcatHpcError):
    """ops-db cannot be used: unreachable, locked, missing, or not at this ccat-hpc's schema."""

    exit_code = 6


class MigrationRefused(DatabaseUnavailable):
    """ops-db holds data a schema migration cannot take as it is (the message says what)."""
