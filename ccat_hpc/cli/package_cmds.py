"""``ccat-hpc package``: build, verify and read packages by hand."""

from __future__ import annotations

from pathlib import Path

import click

from ccat_hpc.cli.progress import terminal_progress
from ccat_hpc.engine.build import build_package
from ccat_hpc.engine.chunks import DEFAULT_CHUNK_SIZE
from ccat_hpc.engine.errors import EngineError
from ccat_hpc.engine.reader import LocalFile, extract_members, verify_package
from ccat_hpc.engine.sources import specs_from_folders, specs_from_list

_BUFFER = click.option(
    "--buffer-size",
    type=int,
    default=DEFAULT_CHUNK_SIZE,
    show_default=True,
    help="Bytes per read/write chunk (memory per rank; a multiple of 512).",
)


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
@_BUFFER
def build(
    sources: tuple[Path, ...], output: Path, files_from: click.File | None, buffer_size: int
) -> None:
    """Package SOURCES (folders, named as `tar -cf OUT SOURCES` names them); print the checksum."""
    if bool(sources) == bool(files_from):
        raise click.UsageError("give either SOURCES or --files-from")
    if files_from is not None:
        specs = specs_from_list(files_from, Path.cwd())  # type: ignore[arg-type]
    else:
        specs = specs_from_folders(list(sources))
    if not specs:
        raise EngineError("nothing to package: no files found")
    result = build_package(
        specs, output, chunk_size=buffer_size, progress=terminal_progress("build")
    )
    click.echo(f"{result.xxh3_128}  {output}")


@package.command("verify")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--checksum", help="Expected xxh3-128 of the whole package.")
@_BUFFER
def verify(path: Path, checksum: str | None, buffer_size: int) -> None:
    """Re-hash PATH and check every member against its index."""
    source = LocalFile(path)
    try:
        report = verify_package(source, checksum, buffer_size, terminal_progress("verify"))
    finally:
        source.close()
    click.echo(f"{report.xxh3_128}  {path}: OK ({report.members} members, {report.size} bytes)")


@package.command("extract")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("members", nargs=-1, required=True)
@click.option("--to", "folder", type=click.Path(file_okay=False, path_type=Path), default=".")
def extract(path: Path, members: tuple[str, ...], folder: Path) -> None:
    """Read MEMBERS out of PATH by their index entries (range reads), verified."""
    source = LocalFile(path)
    try:
        for target in extract_members(source, list(members), folder):
            click.echo(str(target))
    finally:
        source.close()
