"""The web UI's sign-in and its observations browser: program → obs unit → executions
→ files → where every copy is, with checksums, last verification and the chain of
custody."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.access.tokens import TokenRefused, caller_of
from ccat_hpc.api.deps import TOKEN_COOKIE, SessionsDep
from ccat_hpc.api.routes.common import MAX_ID
from ccat_hpc.api.ui.web import (
    REASONS,
    PageCaller,
    ReaderPage,
    check_form,
    form_fields,
    render,
    safe_target,
    sign_in_response,
)
from ccat_hpc.db.session import transaction
from ccat_hpc.errors import CcatHpcError
from ccat_hpc.inventory.catalog import catalog_overview
from ccat_hpc.inventory.files import FileFilter, list_files, show_file
from ccat_hpc.inventory.observations import ObservationFilter, list_observations, show_observation
from ccat_hpc.inventory.trace import trace

router = APIRouter(prefix="/ui", include_in_schema=False)
PAGE = 50


@router.get("")
def home() -> Response:
    return RedirectResponse("/ui/observations", status_code=303)


@router.get("/signin")
def sign_in_page(
    request: Request,
    next_page: Annotated[str | None, Query(alias="next", max_length=500)] = None,
    reason: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    shown = REASONS.get(reason or "")
    return render(request, "signin.html", None, target=safe_target(next_page), reason=shown)


@router.post("/signin")
async def sign_in(request: Request, factory: SessionsDep) -> Response:
    fields = await form_fields(request)  # refuses a form of another site (a forced sign-in)
    token = fields.get("token", "").strip()
    target = safe_target(fields.get("next"))
    try:
        await run_in_threadpool(_check_token, factory, token)
    except TokenRefused as exc:
        return render(request, "signin.html", None, 401, target=target, reason=str(exc))
    return sign_in_response(request, token, target)


def _check_token(factory: sessionmaker[Session], token: str) -> None:
    with transaction(factory) as session:
        caller_of(session, token)


@router.post("/signout")
async def sign_out(request: Request, caller: PageCaller) -> Response:
    check_form(request, await form_fields(request))
    response = RedirectResponse("/ui/signin", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path="/")
    return response


@router.get("/observations")
def observations(
    request: Request,
    caller: ReaderPage,
    factory: SessionsDep,
    program: Annotated[str | None, Query(max_length=200)] = None,
    obs_unit: Annotated[str | None, Query(max_length=200)] = None,
    after: uuid.UUID | None = None,
) -> Response:
    wanted = ObservationFilter(program=program or None, obs_unit=obs_unit or None)
    problem = None
    with transaction(factory) as session:
        catalog = catalog_overview(session)
        try:
            page = list_observations(session, wanted, PAGE, after)
        except CcatHpcError as exc:
            page, problem = None, str(exc)
    return render(
        request,
        "observations.html",
        caller,
        catalog=catalog,
        page=page,
        problem=problem,
        program=program or "",
        obs_unit=obs_unit or "",
    )


@router.get("/observations/{execution_id}")
def observation(
    request: Request,
    caller: ReaderPage,
    factory: SessionsDep,
    execution_id: uuid.UUID,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
) -> Response:
    with transaction(factory) as session:
        detail = show_observation(session, execution_id)
        files = list_files(session, FileFilter(execution=execution_id), PAGE, after)
    return render(request, "observation.html", caller, obs=detail, files=files)


@router.get("/files/{file_id}")
def file(
    request: Request,
    caller: ReaderPage,
    factory: SessionsDep,
    file_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> Response:
    with transaction(factory) as session:
        detail = show_file(session, file_id)
        custody = trace(session, str(file_id))
    return render(request, "file.html", caller, file=detail, custody=custody)
