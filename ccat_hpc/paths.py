"""The one rule for relative paths that must stay below a root (pure).

Manifest file paths (relative to a DataLocation's root) and package member names
(relative to the folder a package is extracted into) follow the same rule: a clean
relative POSIX path, so nothing can reach outside its root.
"""

from __future__ import annotations

from ccat_hpc.text import CONTROL_CHARACTERS

MAX_PATH_LENGTH = 1024


def relative_path_problem(path: str) -> str | None:
    """Why ``path`` is not a clean relative path below its root, or None when it is."""
    if not path:
        return "path is empty"
    if not _is_utf8(path):
        return f"path is not UTF-8 text: {path!r}"
    if CONTROL_CHARACTERS.search(path):
        return f"path contains a control character (NUL, newline, …): {path!r}"
    if len(path) > MAX_PATH_LENGTH:
        return f"path is longer than {MAX_PATH_LENGTH} characters"
    if path.startswith("/") or "\\" in path:
        return f"path must be relative (no leading '/', no '\\'), got {path!r}"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return f"path must not contain '..', '.' or empty parts, got {path!r}"
    return None


def check_relative_path(path: str) -> str:
    """Return ``path`` if it is a clean relative path below its root, else raise ValueError."""
    problem = relative_path_problem(path)
    if problem is not None:
        raise ValueError(problem)
    return path


def _is_utf8(text: str) -> bool:
    """False for a name read from a file system in another encoding (held as surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
