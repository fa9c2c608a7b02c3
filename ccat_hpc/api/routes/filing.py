"""Filing an observation: the manifest contract as a JSON body.

The body goes through the same decoding, validation and filing as a manifest file
(``ccat-hpc file``): the same checks, the same error texts, one transaction, and the
same content filed twice is a no-op. An ``instrument`` user files their own
instrument's observations only.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.access.policy import Caller, require
from ccat_hpc.api.deps import SessionsDep, needs
from ccat_hpc.api.problems import BodyTimedOut, TooManyRequests, problem_response
from ccat_hpc.pipeline.intake import IntakeOutcome, IntakeStatus, file_parsed
from ccat_hpc.pipeline.manifest import Manifest, decode_manifest, parse_manifest_text

router = APIRouter(prefix="/api/v1", tags=["filing"])
FILING_PATH = "/api/v1/observations"
Filer = Annotated[Caller, Depends(needs("observations:file"))]


class Filed(BaseModel):
    status: str
    message: str
    execution: str | None
    files: int | None
    bytes: int | None


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its ``$defs`` put in place (OpenAPI has no ``$defs``)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(copy.deepcopy(defs[ref.removeprefix("#/$defs/")]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(schema)
    return result


async def file_for(
    request: Request, caller: Caller, factory: sessionmaker[Session], name: str
) -> IntakeOutcome:
    """File the manifest in the request's body as ``caller`` (the API's body, the web
    UI's upload). A few at a time (429 beyond: each is held in memory while it is
    checked); the checks run on a worker thread. ManifestError for a bad one,
    AccessDenied for another instrument's."""
    filings: threading.BoundedSemaphore = request.app.state.filings
    if not filings.acquire(blocking=False):
        raise TooManyRequests("other manifests are being filed now; try again shortly", 2)
    try:
        seconds = request.app.state.settings.body_seconds
        try:
            with anyio.fail_after(seconds):
                data = await request.body()
        except TimeoutError:
            raise BodyTimedOut(f"the manifest did not arrive within {seconds:g} s") from None
        return await run_in_threadpool(_file_bytes, caller, factory, data, name)
    finally:
        filings.release()


def _file_bytes(
    caller: Caller, factory: sessionmaker[Session], data: bytes, name: str
) -> IntakeOutcome:
    manifest, digest = parse_manifest_text(decode_manifest(data))
    require(caller, "observations:file", instrument=manifest.instrument)
    return file_parsed(factory, Path(name), manifest, digest, caller.username)


def manifest_body() -> dict[str, Any]:
    schema = _inlined(Manifest.model_json_schema())
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


@router.post(
    "/observations",
    response_model=Filed,
    status_code=201,
    responses={200: {"model": Filed, "description": "Filed before with this content"}},
    openapi_extra=manifest_body(),
)
async def file_observation(
    request: Request,
    caller: Filer,
    factory: SessionsDep,
    name: Annotated[
        str,
        Query(
            min_length=1,
            max_length=255,
            pattern=r"^[^/]+$",
            description="The manifest's file name, kept with the filing.",
        ),
    ] = "api",
) -> JSONResponse:
    """File one execution of one instrument module (201), or find it filed with this
    content already (200); 422 names what is wrong and nothing is written."""
    outcome = await file_for(request, caller, factory, name)
    if outcome.status is IntakeStatus.DEFERRED:
        return problem_response(
            503,
            "unavailable",
            "ops-db unavailable",
            outcome.message,
            headers={"Retry-After": "30"},
            instance=request.url.path,
        )
    if outcome.status is IntakeStatus.REJECTED:
        return problem_response(
            422,
            "manifest-rejected",
            "Manifest rejected",
            outcome.message,
            instance=request.url.path,
        )
    shown = outcome.to_json()
    shown.pop("manifest")
    return JSONResponse(shown, status_code=201 if outcome.status is IntakeStatus.FILED else 200)
