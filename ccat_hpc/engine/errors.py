"""Errors of the packaging engine."""

from __future__ import annotations

from ccat_hpc.errors import CcatHpcError


class EngineError(CcatHpcError):
    """A package could not be built, verified or read."""

    exit_code = 7


class UnsafeMemberName(EngineError):
    """A member name that is not a clean relative path, or is reserved, or repeats."""


class SourceChanged(EngineError):
    """A source file changed (size, or vanished) while it was being packaged."""


class ChecksumMismatch(EngineError):
    """A file's xxh3-128 differs from the one recorded for it."""


class PackageCorrupt(EngineError):
    """A package's bytes do not match its checksum or its index."""


class InvalidPackage(PackageCorrupt):
    """A file whose structure is not that of a ccat package: damaged, tampered or another file."""


def not_a_package(problem: str) -> InvalidPackage:
    """The error for a structural problem, worded the same way everywhere."""
    return InvalidPackage(f"not a valid ccat package: {problem}")
