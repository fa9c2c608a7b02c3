"""Pieces every endpoint module uses: names, times, ids and their checks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query, Request
from pydantic import BaseModel, ConfigDict, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.api.problems import BadField
from ccat_hpc.db.models import User
from ccat_hpc.errors import NotFoundError
from ccat_hpc.inventory.common import DEFAULT_LIMIT, MAX_LIMIT, parse_time
from ccat_hpc.inventory.trace import MAX_ID

__all__ = [
    "DEFAULT_PAGE",
    "MAX_ID",
    "Body",
    "Limit",
    "NameQuery",
    "existing_user",
    "no_nul",
    "time_field",
]

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


class Body(BaseModel):
    """A request body: no field it does not know, no NUL character in any string."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        return no_nul_in(value)


def no_nul_in(value: object) -> object:
    """A body's value with no NUL character in any of its strings (ValueError: 422)."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("holds a NUL character")
    if isinstance(value, list):
        for item in value:
            no_nul_in(item)
    return value


def existing_user(session: Session, name: str) -> None:
    """NotFoundError unless ``name`` is an active user: what is done for someone else
    through the API names a user an admin added (none is made on the way)."""
    found = session.scalars(select(User).where(User.username == name)).first()
    if found is None or not found.active:
        raise NotFoundError(f"no active user {name}: an admin adds users (ccat-hpc user add)")
