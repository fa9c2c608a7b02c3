"""Turn folders or a file list into member specs (what `package build` packages)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from ccat_hpc.engine.errors import EngineError
from ccat_hpc.engine.layout import MemberSpec


def spec_for(path: Path, name: str) -> MemberSpec:
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise EngineError(f"{path}: cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise EngineError(f"{path}: not a regular file (links and devices are not packaged)")
    return MemberSpec(name, info.st_size, info.st_mtime_ns, info.st_mode & 0o777, str(path))


def specs_from_folders(folders: Sequence[Path]) -> list[MemberSpec]:
    """Every file below each folder, named like ``tar -cf out.tar FOLDER`` names them."""
    specs = []
    for folder in folders:
        if not folder.is_dir():
            raise EngineError(f"{folder}: not a folder")
        base = folder.resolve().parent
        for directory, subdirs, files in os.walk(folder.resolve()):
            subdirs.sort()
            for file_name in sorted(files):
                path = Path(directory, file_name)
                specs.append(spec_for(path, path.relative_to(base).as_posix()))
    return specs


def specs_from_list(lines: Iterable[str], root: Path) -> list[MemberSpec]:
    """One relative path per line, below ``root``; the path is the member name."""
    return [spec_for(root / line, line) for line in (raw.strip() for raw in lines) if line]
