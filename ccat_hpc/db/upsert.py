"""Idempotent create-or-update of named rows, shared by the site and catalog loaders."""

from __future__ import annotations

from collections import Counter
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccat_hpc.db.base import Base
from ccat_hpc.errors import ConfigError

ModelT = TypeVar("ModelT", bound=Base)


class UpsertReport(Counter[str]):
    """Counts of ``created`` / ``updated`` / ``unchanged`` rows per kind."""

    def summary(self) -> str:
        parts = [f"{self[k]} {k}" for k in ("created", "updated", "unchanged") if self[k]]
        return ", ".join(parts) or "nothing to do"


def changed_values(obj: Base, values: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``values`` that differs from what ``obj`` holds (pure)."""
    return {key: value for key, value in values.items() if getattr(obj, key) != value}


def upsert(
    session: Session,
    model: type[ModelT],
    keys: dict[str, Any],
    values: dict[str, Any],
    report: UpsertReport,
    label: str,
) -> ModelT:
    """Find the ``model`` row matching ``keys``; create it, or update only what changed.

    Polymorphic models must be upserted through the concrete class: an existing row of
    another subclass (say a fixed source becoming a solar system object) is a ConfigError.
    """
    obj = session.scalars(select(model).filter_by(**keys)).one_or_none()
    if obj is None:
        base = _polymorphic_base(model)
        other = session.scalars(select(base).filter_by(**keys)).one_or_none() if base else None
        if other is not None:
            raise ConfigError(
                f"{label}: exists as a {type(other).__name__}; changing it to a "
                f"{model.__name__} is not supported (rename it or remove the old one)"
            )
        obj = model(**keys, **values)
        session.add(obj)
        session.flush()
        report["created"] += 1
        return obj
    changes = changed_values(obj, values)
    for key, value in changes.items():
        setattr(obj, key, value)
    report["updated" if changes else "unchanged"] += 1
    return obj


def _polymorphic_base(model: type[Base]) -> type[Base] | None:
    base = model.__mapper__.base_mapper.class_
    return base if base is not model else None
