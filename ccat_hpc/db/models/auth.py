"""Access: users, roles and API tokens (only a hash of a token is ever stored)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ccat_hpc.db.base import Base, BigIntPK, CreatedMixin, IdMixin, JSONType

user_role = Table(
    "user_role",
    Base.metadata,
    Column("user_id", BigIntPK, ForeignKey("user.id"), primary_key=True),
    Column("role_id", BigIntPK, ForeignKey("role.id"), primary_key=True),
)


class Role(IdMixin, Base):
    __tablename__ = "role"
    name: Mapped[str] = mapped_column(String(50), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")


class User(IdMixin, CreatedMixin, Base):
    __tablename__ = "user"
    username: Mapped[str] = mapped_column(String(100), unique=True)
    email: Mapped[str] = mapped_column(String(255), default="")
    full_name: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(default=True)
    #: an ``instrument`` user files observations of this instrument only
    instrument_id: Mapped[int | None] = mapped_column(ForeignKey("instrument.id"))
    roles: Mapped[list[Role]] = relationship(secondary=user_role)
    api_tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")


class ApiToken(IdMixin, CreatedMixin, Base):
    """An API token: ``prefix`` identifies it in listings, ``token_hash`` verifies it."""

    __tablename__ = "api_token"
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked: Mapped[bool] = mapped_column(default=False)
    revoked_at: Mapped[datetime | None]
    #: what the token may do (a subset of its user's roles' scopes)
    scopes: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    user: Mapped[User] = relationship(back_populates="api_tokens")
