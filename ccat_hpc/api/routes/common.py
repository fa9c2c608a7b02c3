"""Pieces every endpoint module uses: names, times, ids and their checks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query, Request

from ccat_hpc.api.problems import BadField
from ccat_hpc.inventory.common import DEFAULT_LIMIT, MAX_LIMIT, parse_time

MAX_ID = 2**63 - 1
NameQuery = Annotated[str | None, Query(min_length=1, max_length=200)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
DEFAULT_PAGE = DEFAULT_LIMIT


def no_nul(request: Request) -> None:
    """Refuse NUL characters in the path and query (ops-db's text cannot hold them)."""
    for key, value in [*request.query_params.multi_items(), *request.path_params.items()]:
        if "\x00" in str(value):
            raise BadField(key, "holds a NUL character")


def time_field(name: str, text: str | None, end_of_day: bool = False) -> datetime | None:
    """An ISO 8601 time or a date of a query field; 422 naming the field otherwise."""
    if text is None:
        return None
    try:
        return parse_time(text, end_of_day)
    except ValueError as exc:
        raise BadField(name, str(exc)) from None
