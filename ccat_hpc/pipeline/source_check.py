"""Check that the files a manifest lists are really on SOURCE storage, inside its root."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from ccat_hpc.errors import ManifestError
from ccat_hpc.pipeline.manifest import ManifestFile

MAX_REPORTED_PROBLEMS = 5


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


class SourceTreeChecker:
    """Checks files below one root; resolves each directory only once (fast for 100k files)."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise ManifestError(f"location root {root} does not exist or is not a folder")
        self.root = os.path.realpath(root)
        self._dirs: dict[str, bool] = {}

    def _dir_inside(self, directory: str) -> bool:
        known = self._dirs.get(directory)
        if known is None:
            known = _inside(os.path.realpath(directory), self.root)
            self._dirs[directory] = known
        return known

    def problem(self, entry: ManifestFile) -> str | None:
        """What is wrong with one listed file, or None when it is fine."""
        full = os.path.join(self.root, entry.path)
        if not self._dir_inside(os.path.dirname(full)):
            return "a folder on its path is a link that leaves the location root"
        try:
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                if not _inside(os.path.realpath(full), self.root):
                    return "is a symbolic link that leaves the location root"
                info = os.stat(full)
        except FileNotFoundError:
            return "no such file"
        except OSError as exc:
            return f"cannot be read: {exc.strerror}"
        if not stat.S_ISREG(info.st_mode):
            return "is not a regular file"
        if info.st_size != entry.size:
            return f"is {info.st_size} bytes on disk, the manifest says {entry.size}"
        return None


def check_source_files(root: Path, files: Sequence[ManifestFile]) -> None:
    """Raise one ManifestError listing the first problems, if any file is not as stated."""
    checker = SourceTreeChecker(root)
    problems: list[str] = []
    count = 0
    for index, entry in enumerate(files):
        problem = checker.problem(entry)
        if problem is not None:
            count += 1
            if len(problems) < MAX_REPORTED_PROBLEMS:
                problems.append(f"files[{index}] {entry.path}: {problem}")
    if problems:
        more = f" (and {count - len(problems)} more)" if count > len(problems) else ""
        raise ManifestError("; ".join(problems) + more)
