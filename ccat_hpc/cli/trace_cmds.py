"""``ccat-hpc trace PATH|ID``: the chain of custody of one raw file or RawDataPackage."""

from __future__ import annotations

import json
from typing import Any

import click

from ccat_hpc.cli.context import AppContext, pass_app
from ccat_hpc.cli.remote import api_options


@click.command()
@api_options
@click.argument("what")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def trace(app: AppContext, what: str, as_json: bool) -> None:
    """Every copy of a file (or RDP), its checksums and last verification, and every
    package and transfer it travelled in.

    WHAT is a raw file's id, its path below its SOURCE root or its absolute path; or a
    RawDataPackage as rdp:ID, its name or its path.
    """
    from ccat_hpc.db.session import transaction
    from ccat_hpc.inventory.trace import trace as collect

    client = app.api_client()
    if client is not None:
        found = client.get("/api/v1/trace", params={"what": what})
    else:
        with transaction(app.sessions()) as session:
            found = collect(session, what)
    click.echo(json.dumps(found, indent=2) if as_json else "\n".join(render(found)))


def _copy_lines(copies: list[dict[str, Any]], indent: str) -> list[str]:
    lines = []
    for copy in copies:
        when = copy["verified_at"] or "never verified"
        reason = f" — {copy['reason']}" if copy["reason"] else ""
        lines.append(
            f"{indent}{copy['location']:<26} {copy['state']:<10} {copy['checksum'] or '-':<33} "
            f"{when}{reason}"
        )
    return lines or [f"{indent}(no copy)"]


def render(found: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    item = found["file"]
    if item is not None:
        lines.append(f"file {item['id']}: {item['path']} ({item['state']}, {item['size']} bytes)")
        lines.append(f"  execution {item['execution']}, xxh3-128 {item['checksum'] or '-'}")
        if item["reason"]:
            lines.append(f"  last problem: {item['reason']}")
        lines.append("  copies:")
        lines += _copy_lines(item["copies"], "    ")
        if item["in_package"]:
            member = item["in_package"]
            lines.append(f"  in its package at bytes {member['offset']}+{member['size']}")
    package = found["package"]
    if package is None:
        lines.append("  not packaged yet")
        return lines
    lines.append(
        f"package {package['name']} ({package['state']}, {package['size']} bytes, "
        f"xxh3-128 {package['checksum'] or '-'})"
    )
    if package["reason"]:
        lines.append(f"  last problem: {package['reason']}")
    lines += _copy_lines(package["copies"], "  ")
    for upload in package["archive_uploads"]:
        lines.append(
            f"  archive upload {upload['id']} to {upload['to']}: {upload['state']}, "
            f"{upload['bytes']} bytes, {upload['finished_at'] or '-'}"
            + (f" — {upload['reason']}" if upload["reason"] else "")
        )
    dtp = package["transfer_package"]
    if dtp is not None:
        lines.append(
            f"travelled in {dtp['name']} ({dtp['state']}, xxh3-128 {dtp['checksum'] or '-'})"
        )
        lines += _copy_lines(dtp["copies"], "  ")
        for hop in dtp["transfers"]:
            rate = ""
            if hop["seconds"]:
                rate = f", {hop['bytes'] / hop['seconds'] / 1e6:.0f} MB/s"
            lines.append(
                f"  transfer {hop['id']}: {hop['from']} → {hop['to']} by {hop['method']}: "
                f"{hop['state']}, {hop['bytes']} bytes{rate}"
                + (f" — {hop['reason']}" if hop["reason"] else "")
            )
            if hop["log"]:
                lines.append(f"    log: {hop['log']}")
    return lines
