"""``ccat-hpc package``: build, verify and read packages by hand.

``build`` and ``verify`` run in parallel when started by ``mpiexec -n N`` or
``srun -n N``: every rank runs the same command, rank 0 prints the result and errors,
the other ranks only share the work and exit with the same code.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from ccat_hpc.cli.progress import terminal_progress
from ccat_hpc.engine import api
from ccat_hpc.engine.chunks import DEFAULT_CHUNK_SIZE
from ccat_hpc.engine.errors import EngineError
from ccat_hpc.engine.extract import extract_members
from ccat_hpc.engine.layout import MemberSpec
from ccat_hpc.engine.mpi import is_root, world
from ccat_hpc.engine.reader import DEFAULT_READ_SIZE, LocalFile, read_index
from ccat_hpc.engine.sources import specs_from_folders, specs_from_list
from ccat_hpc.errors import CcatHpcError

if TYPE_CHECKING:
    from mpi4py.MPI import Intracomm

MAX_BUFFER_SIZE = 1024**3
FC = TypeVar("FC", bound=Callable[..., object])


def buffer_option(default: int) -> Callable[[FC], FC]:
    return click.option(
        "--buffer-size",
        type=int,
        default=default,
        show_default=True,
        help="Bytes per read/write chunk (memory per rank; a multiple of 512).",
        callback=lambda _ctx, _param, value: _check_buffer_size(value),
    )


def _check_buffer_size(value: int) -> int:
    if value <= 0 or value % 512 or value > MAX_BUFFER_SIZE:
        raise click.BadParameter(f"must be a positive multiple of 512, at most {MAX_BUFFER_SIZE}")
    return value


@contextlib.contextmanager
def rank_zero_speaks(comm: Intracomm | None) -> Iterator[None]:
    """Other ranks leave errors to rank 0 (which has the same one) and exit with its code."""
    try:
        yield
    except CcatHpcError as exc:
        if is_root(comm):
            raise
        raise SystemExit(exc.exit_code) from None


@click.group()
def package() -> None:
    """Build, verify and read tar packages (xxh3-128, member index, byte-range reads)."""


@package.command("build")
@click.argument("sources", nargs=-1, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
@click.option(
    "--files-from",
    type=click.File("r"),
    help="Paths relative to the current folder, one per line (instead of SOURCES).",
)
@buffer_option(DEFAULT_CHUNK_SIZE)
def build(
    sources: tuple[Path, ...], output: Path, files_from: click.File | None, buffer_size: int
) -> None:
    """Package SOURCES (folders, named as `tar -cf OUT SOURCES` names them); print the checksum."""
    if bool(sources) == bool(files_from):
        raise click.UsageError("give either SOURCES or --files-from")

    def list_specs() -> list[MemberSpec]:
        if files_from is not None:
            specs = specs_from_list(files_from, Path.cwd())  # type: ignore[arg-type]
        else:
            specs = specs_from_folders(list(sources))
        if not specs:
            raise EngineError("nothing to package: no files found")
        return specs

    comm = world()
    with rank_zero_speaks(comm):
        result = api.build(
            comm, list_specs, output, chunk_size=buffer_size, progress=terminal_progress("build")
        )
    if is_root(comm):
        click.echo(f"{result.xxh3_128}  {output}")


@package.command("verify")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--checksum", help="Expected xxh3-128 of the whole package.")
@buffer_option(DEFAULT_READ_SIZE)
def verify(path: Path, checksum: str | None, buffer_size: int) -> None:
    """Check PATH: its tar structure against its index, every member's xxh3-128 and the
    whole package's (against --checksum when given)."""
    comm = world()
    with rank_zero_speaks(comm):
        report = api.verify(
            comm, path, checksum, chunk_size=buffer_size, progress=terminal_progress("verify")
        )
    if is_root(comm):
        click.echo(f"{report.xxh3_128}  {path}: OK ({report.members} members, {report.size} bytes)")


@package.command("extract")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("members", nargs=-1, required=True)
@click.option(
    "--to",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    help="Folder to extract into (created if missing).",
)
def extract(path: Path, members: tuple[str, ...], folder: Path) -> None:
    """Read MEMBERS (names, or folders of members) out of PATH by range reads, verified.

    All or nothing: if one member cannot be extracted, none is left behind.
    """
    source = LocalFile(path)
    try:
        for target in extract_members(source, list(members), folder):
            click.echo(str(target))
    finally:
        source.close()


@package.command("list")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON list of the index entries.")
def list_members(path: Path, as_json: bool) -> None:
    """Show PATH's members from its index: name, size, data offset, xxh3-128 (tab-separated).

    Reads only the end of the package (the index), none of the members.
    """
    source = LocalFile(path)
    try:
        index = read_index(source)
    finally:
        source.close()
    if as_json:
        click.echo(json.dumps([entry.as_json() for entry in index.members], ensure_ascii=False))
        return
    for entry in index.members:  # names hold no control characters (checked with the index)
        click.echo(f"{entry.name}\t{entry.size}\t{entry.offset}\t{entry.xxh3_128}")
