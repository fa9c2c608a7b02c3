"""Names users give (instrument, module, obs unit, program, location, site) → ops-db rows.

A name that matches nothing raises NotFoundError with the closest match and the valid
choices (:func:`ccat_hpc.names.unknown_name_message`).
"""

from __future__ import annotations

import uuid

from sqlalchemy import or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from ccat_hpc.db.models import (
    DataLocation,
    ExecutedObsUnit,
    Instrument,
    InstrumentModule,
    ObservingProgram,
    ObsUnit,
    Site,
)
from ccat_hpc.errors import NotFoundError
from ccat_hpc.names import unknown_name_message


def _all(session: Session, column: InstrumentedAttribute[str]) -> list[str]:
    return [name for name in session.scalars(select(column).distinct()) if name]


def _id_by_name(
    session: Session,
    what: str,
    id_column: InstrumentedAttribute[int],
    name_column: InstrumentedAttribute[str],
    name: str,
) -> int:
    found = session.scalars(select(id_column).where(name_column == name)).first()
    if found is None:
        raise NotFoundError(unknown_name_message(what, name, _all(session, name_column)))
    return found


def instrument_id(session: Session, name: str) -> int:
    return _id_by_name(session, "instrument", Instrument.id, Instrument.name, name)


def obs_unit_id(session: Session, name: str) -> int:
    return _id_by_name(session, "obs unit", ObsUnit.id, ObsUnit.name, name)


def location_id(session: Session, name: str) -> int:
    return _id_by_name(session, "location", DataLocation.id, DataLocation.name, name)


def program_id(session: Session, name: str) -> int:
    """An observing program by its name or its short name."""
    found = session.scalars(
        select(ObservingProgram.id).where(
            or_(ObservingProgram.name == name, ObservingProgram.short_name == name)
        )
    ).first()
    if found is None:
        known = _all(session, ObservingProgram.name) + _all(session, ObservingProgram.short_name)
        raise NotFoundError(unknown_name_message("observing program", name, known))
    return found


def module_ids(session: Session, name: str, of_instrument: int | None = None) -> list[int]:
    """The modules called ``name`` (of one instrument, or of any: names repeat)."""
    query = select(InstrumentModule.id).where(InstrumentModule.name == name)
    known = select(InstrumentModule.name).distinct()
    what = "instrument module"
    if of_instrument is not None:
        query = query.where(InstrumentModule.instrument_id == of_instrument)
        known = known.where(InstrumentModule.instrument_id == of_instrument)
        what = f"{session.get_one(Instrument, of_instrument).name} module"
    found = list(session.scalars(query))
    if not found:
        raise NotFoundError(unknown_name_message(what, name, list(session.scalars(known))))
    return found


def site(session: Session, name: str) -> Site:
    found = session.scalars(select(Site).where(Site.name == name)).first()
    if found is None:
        raise NotFoundError(unknown_name_message("site", name, _all(session, Site.name)))
    return found


def execution(session: Session, execution_id: uuid.UUID) -> ExecutedObsUnit:
    found = session.get(ExecutedObsUnit, execution_id)
    if found is None:
        raise NotFoundError(f"no execution {execution_id} in ops-db")
    return found
