"""Where staged data lives on a PROCESSING location (pure).

Every staged file is kept once per location, under ``store/<source location>/<path>``
(its PhysicalCopy); a staging request's folder, ``requests/<user>/<id>``, links to the
files it asked for under their own paths, beside the STAGING, READY or FAILED marker.
Two requests for the same file share its one copy, so it is fetched once.
"""

from __future__ import annotations

STORE = "store"
REQUESTS = "requests"
#: the markers a request folder shows, one at a time
STAGING_MARKER = "STAGING"
READY_MARKER = "READY"
FAILED_MARKER = "FAILED"
MARKERS = (STAGING_MARKER, READY_MARKER, FAILED_MARKER)


def staged_key(source_location: str, relative_path: str) -> str:
    """The key of a staged file's one copy at a PROCESSING location."""
    return f"{STORE}/{source_location}/{relative_path}"


def request_folder(username: str, staging_id: int) -> str:
    """The folder of one staging request, relative to the location's root."""
    return f"{REQUESTS}/{username}/{staging_id}"
