"""The web UI's working pages: the pipeline monitor, the signed-in scientist's staging
requests (request and release), and campaigns (operators act on them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from ccat_hpc.access.policy import AccessDenied, Caller, require_scope
from ccat_hpc.api.deps import SessionsDep
from ccat_hpc.api.routes.campaigns import CampaignBody, control, queue_for
from ccat_hpc.api.routes.filing import file_for
from ccat_hpc.api.routes.staging import StagingBody, release_for, stage_for
from ccat_hpc.api.ui.chart import line_chart
from ccat_hpc.api.ui.web import PageCaller, check_form, form_fields, may, render
from ccat_hpc.db.base import utcnow
from ccat_hpc.db.session import transaction
from ccat_hpc.errors import CcatHpcError
from ccat_hpc.inventory.catalog import catalog_overview
from ccat_hpc.inventory.staging import list_requests
from ccat_hpc.inventory.transfer_rates import transfer_rates
from ccat_hpc.pipeline import campaigns as campaign_rules

router = APIRouter(prefix="/ui", include_in_schema=False)
CAMPAIGN_VERBS = ("pause", "resume", "cancel")


@router.get("/monitor")
def monitor(request: Request, caller: PageCaller, factory: SessionsDep) -> Response:
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
    status: int = 200,
) -> Response:
    with transaction(factory) as session:
        requests = list_requests(session, caller.username, show_all=True)[:100]
        units = [u.name for p in catalog_overview(session).observing_programs for u in p.obs_units]
    return render(
        request,
        "staging.html",
        caller,
        status,
        requests=requests,
        obs_units=units,
        message=message,
        problem=problem,
        can_stage=may(caller, "staging:own"),
    )


@router.get("/staging")
def staging(request: Request, caller: PageCaller, factory: SessionsDep) -> Response:
    return _staging_page(request, caller, factory)


@router.post("/staging")
async def request_staging(request: Request, caller: PageCaller, factory: SessionsDep) -> Response:
    fields = await form_fields(request)
    try:
        check_form(request, fields)
        wanted = {k: v for k, v in fields.items() if k in ("obs_unit", "files", "days") and v}
        made = stage_for(request, caller, factory, StagingBody.model_validate(wanted))
    except (CcatHpcError, AccessDenied, ValidationError) as exc:
        return _staging_page(request, caller, factory, problem=_one_line(exc), status=400)
    return _staging_page(
        request, caller, factory, message=f"staging request {made.id}: {made.files} file(s)"
    )


@router.post("/staging/{staging_id}/release")
async def release(
    request: Request, caller: PageCaller, factory: SessionsDep, staging_id: int
) -> Response:
    fields = await form_fields(request)
    try:
        check_form(request, fields)
        released = release_for(request, caller, factory, staging_id)
    except (CcatHpcError, AccessDenied) as exc:
        return _staging_page(request, caller, factory, problem=_one_line(exc), status=400)
    return _staging_page(
        request, caller, factory, message=f"staging request {staging_id}: {released.state}"
    )


def _campaigns_page(
    request: Request,
    caller: Caller,
    factory: SessionsDep,
    problem: str | None = None,
    status: int = 200,
) -> Response:
    with transaction(factory) as session:
        shown = [c.as_json() for c in campaign_rules.campaigns(session)][:100]
    return render(
        request,
        "campaigns.html",
        caller,
        status,
        campaigns=shown,
        problem=problem,
        can_run=may(caller, "campaigns"),
    )


@router.get("/campaigns")
def campaigns(request: Request, caller: PageCaller, factory: SessionsDep) -> Response:
    return _campaigns_page(request, caller, factory)


@router.post("/campaigns")
async def create_campaign(request: Request, caller: PageCaller, factory: SessionsDep) -> Response:
    fields = await form_fields(request)
    try:
        check_form(request, fields)
        wanted = {k: v for k, v in fields.items() if k in ("kind", "location", "to", "name") and v}
        queue_for(request, caller, factory, CampaignBody.model_validate(wanted))
    except (CcatHpcError, AccessDenied, ValidationError) as exc:
        return _campaigns_page(request, caller, factory, problem=_one_line(exc), status=400)
    return RedirectResponse("/ui/campaigns", status_code=303)


@router.post("/campaigns/{campaign_id}/{verb}")
async def control_campaign(
    request: Request, caller: PageCaller, factory: SessionsDep, campaign_id: int, verb: str
) -> Response:
    fields = await form_fields(request)
    try:
        check_form(request, fields)
        if verb not in CAMPAIGN_VERBS:
            raise AccessDenied(f"no such action: {verb}")
        control(request, caller, factory, campaign_id, verb, None)
    except (CcatHpcError, AccessDenied) as exc:
        return _campaigns_page(request, caller, factory, problem=_one_line(exc), status=400)
    return RedirectResponse("/ui/campaigns", status_code=303)


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
    """A manifest uploaded from the page (its script posts the file's bytes)."""
    try:
        check_form(request, {"csrf": request.headers.get("x-csrf-token", "")})
        require_scope(caller, "observations:file")
        outcome = await file_for(caller, factory, await request.body(), name)
    except (CcatHpcError, AccessDenied) as exc:
        return JSONResponse({"status": "rejected", "message": _one_line(exc)}, status_code=400)
    code = {"filed": 201, "unchanged": 200, "rejected": 422}.get(outcome.status.value, 503)
    return JSONResponse({"status": outcome.status.value, "message": outcome.message}, code)
