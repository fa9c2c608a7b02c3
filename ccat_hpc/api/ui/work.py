"""The web UI's working pages: the pipeline monitor, the signed-in scientist's staging
requests (request and release), campaigns (operators act on them), and filing a
manifest. A form's work runs on a worker thread (never on the server's event loop)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from ccat_hpc.access.policy import AccessDenied, Caller, require_scope
from ccat_hpc.api.deps import SessionsDep
from ccat_hpc.api.problems import TooManyRequests
from ccat_hpc.api.routes.campaigns import CampaignBody, control, queue_for
from ccat_hpc.api.routes.common import MAX_ID
from ccat_hpc.api.routes.filing import file_for
from ccat_hpc.api.routes.staging import StagingBody, release_for, stage_for
from ccat_hpc.api.ui.chart import line_chart
from ccat_hpc.api.ui.web import (
    PageCaller,
    ReaderPage,
    StagerPage,
    check_form,
    check_same_site,
    form_fields,
    may,
    render,
)
from ccat_hpc.db.base import utcnow
from ccat_hpc.db.session import transaction
from ccat_hpc.errors import CcatHpcError, DatabaseUnavailable
from ccat_hpc.inventory.catalog import catalog_overview
from ccat_hpc.inventory.staging import list_requests
from ccat_hpc.inventory.transfer_rates import transfer_rates
from ccat_hpc.pipeline import campaigns as campaign_rules
from ccat_hpc.storage.base import StorageError

router = APIRouter(prefix="/ui", include_in_schema=False)
CAMPAIGN_VERBS = ("pause", "resume", "cancel")
ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]
#: rows a page shows at most
SHOWN = 100
FORM_PROBLEMS = (CcatHpcError, AccessDenied, ValidationError)


@router.get("/monitor")
def monitor(request: Request, caller: ReaderPage, factory: SessionsDep) -> Response:
    status = request.app.state.status.get(factory)
    with transaction(factory) as session:
        rates = transfer_rates(session, utcnow(), 24)
    return render(request, "monitor.html", caller, status=status, chart=line_chart(rates))


def _staging_page(
    request: Request,
    caller: Caller,
    factory: SessionsDep,
    message: str | None = None,
    problem: str | None = None,
    code: int = 200,
) -> Response:
    with transaction(factory) as session:
        requests = list_requests(session, caller.username, show_all=True, limit=SHOWN).items
        units = [u.name for p in catalog_overview(session).observing_programs for u in p.obs_units]
    return render(
        request,
        "staging.html",
        caller,
        code,
        requests=requests,
        obs_units=units,
        message=message,
        problem=problem,
        can_stage=may(caller, "staging:own"),
    )


@router.get("/staging")
def staging(request: Request, caller: StagerPage, factory: SessionsDep) -> Response:
    return _staging_page(request, caller, factory)


async def _form_action(
    request: Request, action: Callable[[dict[str, str]], Any]
) -> tuple[Any, str | None]:
    """Run a form's action on a worker thread: (its result, None) or (None, the problem)."""
    try:
        fields = await form_fields(request)
        check_form(request, fields)
        return await run_in_threadpool(action, fields), None
    except FORM_PROBLEMS as exc:
        return None, _one_line(exc)


@router.post("/staging")
async def request_staging(request: Request, caller: StagerPage, factory: SessionsDep) -> Response:
    def act(fields: dict[str, str]) -> Any:
        wanted = {k: v for k, v in fields.items() if k in ("obs_unit", "files", "days") and v}
        return stage_for(request, caller, factory, StagingBody.model_validate(wanted))

    made, problem = await _form_action(request, act)
    message = None if made is None else f"staging request {made.id}: {made.files} file(s)"
    return await run_in_threadpool(
        _staging_page, request, caller, factory, message, problem, 400 if problem else 200
    )


@router.post("/staging/{staging_id}/release")
async def release(
    request: Request, caller: StagerPage, factory: SessionsDep, staging_id: ItemId
) -> Response:
    released, problem = await _form_action(
        request, lambda _fields: release_for(request, caller, factory, staging_id)
    )
    message = None if released is None else f"staging request {staging_id}: {released.state}"
    return await run_in_threadpool(
        _staging_page, request, caller, factory, message, problem, 400 if problem else 200
    )


def _campaigns_page(
    request: Request,
    caller: Caller,
    factory: SessionsDep,
    problem: str | None = None,
    code: int = 200,
) -> Response:
    with transaction(factory) as session:
        shown = [c.as_json() for c in campaign_rules.campaigns(session, limit=SHOWN)]
    return render(
        request,
        "campaigns.html",
        caller,
        code,
        campaigns=shown,
        problem=problem,
        can_run=may(caller, "campaigns"),
    )


@router.get("/campaigns")
def campaigns(request: Request, caller: ReaderPage, factory: SessionsDep) -> Response:
    return _campaigns_page(request, caller, factory)


@router.post("/campaigns")
async def create_campaign(request: Request, caller: ReaderPage, factory: SessionsDep) -> Response:
    def act(fields: dict[str, str]) -> Any:
        wanted = {k: v for k, v in fields.items() if k in ("kind", "location", "to", "name") and v}
        return queue_for(request, caller, factory, CampaignBody.model_validate(wanted))

    return await _then_campaigns(request, caller, factory, act)


@router.post("/campaigns/{campaign_id}/{verb}")
async def control_campaign(
    request: Request, caller: ReaderPage, factory: SessionsDep, campaign_id: ItemId, verb: str
) -> Response:
    def act(_fields: dict[str, str]) -> Any:
        if verb not in CAMPAIGN_VERBS:
            raise AccessDenied(f"no such action: {verb}")
        return control(request, caller, factory, campaign_id, verb, None)

    return await _then_campaigns(request, caller, factory, act)


async def _then_campaigns(
    request: Request, caller: Caller, factory: SessionsDep, act: Callable[[dict[str, str]], Any]
) -> Response:
    _done, problem = await _form_action(request, act)
    if problem is None:
        return RedirectResponse("/ui/campaigns", status_code=303)
    return await run_in_threadpool(_campaigns_page, request, caller, factory, problem, 400)


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


@router.get("/file")
def file_page(request: Request, caller: PageCaller) -> Response:
    return render(request, "file_manifest.html", caller, can_file=may(caller, "observations:file"))


@router.post("/file")
async def file_manifest(
    request: Request,
    caller: PageCaller,
    factory: SessionsDep,
    name: Annotated[str, Query(min_length=1, max_length=255, pattern=r"^[^/]+$")] = "upload",
) -> Response:
    """A manifest uploaded from the page (its script posts the file's bytes): as the
    API answers, with a status and a message the page shows."""
    try:
        check_same_site(request)
        check_form(request, {"csrf": request.headers.get("x-csrf-token", "")})
        require_scope(caller, "observations:file")
        outcome = await file_for(request, caller, factory, name)
    except TooManyRequests as exc:
        return JSONResponse({"status": "busy", "message": str(exc)}, status_code=429)
    except (DatabaseUnavailable, StorageError) as exc:
        return JSONResponse({"status": "deferred", "message": str(exc)}, status_code=503)
    except FORM_PROBLEMS as exc:
        return JSONResponse({"status": "rejected", "message": _one_line(exc)}, status_code=400)
    code = {"filed": 201, "unchanged": 200, "rejected": 422}.get(outcome.status.value, 503)
    return JSONResponse({"status": outcome.status.value, "message": outcome.message}, code)
