"""The error tree of ccat-hpc.

Every error the system expects to meet is a :class:`CcatHpcError`; the CLI turns it
into one clear line and the exit code below. Anything else is a bug and is shown as
an internal error (with the traceback under ``--verbose``).
"""

from __future__ import annotations


class CcatHpcError(Exception):
    """Root of every expected ccat-hpc error."""

    exit_code = 1


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
    """ops-db could not be reached or answered with an operational error (transient)."""

    exit_code = 6
