"""Who is calling: bearer token -> :class:`Principal` (role + the plants it may see).

Authorisation has two layers:

1. the application: every route resolves the plant, unit or meter named in its path through
   :meth:`Principal.sees_plant` (a forbidden object answers 404, like a missing one);
2. the database: each request transaction runs as ``energymon_api`` with the principal's scope
   in ``energymon.scope_*`` settings, and row-level security admits only rows of plants in
   scope (see ``storage/migrations/0020_api_auth.sql``) even if a check in layer 1 were missing;
   writes of declared data also need ``energymon.scope_declare`` (plant and admin tokens,
   ``storage/migrations/0031_declared_inputs.sql``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from api.problems import Problem
from api.tokens import Role, hash_secret, looks_like_token


@dataclass(frozen=True)
class Principal:
    token_id: int
    name: str
    role: Role
    scope_plant: str | None          # plant code (role plant)
    scope_region: str | None         # region code whose subtree is in scope
    plant_ids: frozenset[int] | None  # None = every plant

    @property
    def actor(self) -> str:
        """Who this is in the audit of declared data (``energymon.actor``)."""
        return f"token:{self.token_id} ({self.name})"

    @property
    def sees_all(self) -> bool:
        return self.plant_ids is None

    @property
    def may_write_registry(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def may_declare(self) -> bool:
        """Declared-data writes (production records, calorific values, replacements,
        multipliers, grid factors): plant tokens for their own plant, admin tokens for any;
        the plant itself is checked with :meth:`sees_plant`."""
        return self.role in (Role.PLANT, Role.ADMIN)

    def may_push(self, plant_id: int) -> bool:
        return self.role in (Role.PLANT, Role.ADMIN) and self.sees_plant(plant_id)

    def sees_plant(self, plant_id: int) -> bool:
        return self.plant_ids is None or plant_id in self.plant_ids

    @property
    def scope_label(self) -> str:
        if self.scope_plant:
            return f"plant {self.scope_plant}"
        if self.scope_region:
            return f"region {self.scope_region}"
        return "all plants"

    def settings(self) -> tuple[str, str, str, str]:
        """Values of energymon.scope_all, energymon.scope_plants, energymon.scope_write and
        energymon.scope_declare."""
        plants = "" if self.plant_ids is None else ",".join(str(i)
                                                            for i in sorted(self.plant_ids))
        return ("on" if self.plant_ids is None else "off", plants,
                "on" if self.may_write_registry else "off",
                "on" if self.may_declare else "off")


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Problem(401, "unauthenticated",
                      "this endpoint needs an API token: send 'Authorization: Bearer emk_...' "
                      "(an operator creates one with `energymon token create`)",
                      headers={"WWW-Authenticate": 'Bearer realm="energymon"'})
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not looks_like_token(value):
        raise Problem(401, "unauthenticated",
                      "the Authorization header must be 'Bearer emk_...' with an energymon API "
                      "token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return value


def authenticate(conn: psycopg.Connection, secret: str, *, statement_timeout_ms: int,
                 timezone: str) -> Principal:
    """Look the token up and open the request's scope in one round trip, or raise 401.

    In the request transaction: ``energymon_api_authenticate`` sets the ``energymon.scope_*``
    settings for an active token; the statement timeout and the calendar time zone (for
    timestamps rendered by PostgreSQL) are set alongside.
    """
    row = conn.execute(
        "SELECT a.*, set_config('statement_timeout', %s, true), "
        "set_config('TimeZone', %s, true), "
        # who writes declared data (the database stamps it on the rows and the audit log)
        "set_config('energymon.actor', 'token:' || a.token_id || ' (' || a.token_name || ')', "
        "true) FROM energymon_api_authenticate(%s) a",
        (str(statement_timeout_ms), timezone, hash_secret(secret))).fetchone()
    invalid = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    if row is None:
        raise Problem(401, "unauthenticated", "this API token is not valid; check that it was "
                      "copied whole, or ask an operator for a new one", headers=invalid)
    token_id, name, role, scope_plant, scope_region, plant_ids, expires_at, revoked_at = row[:8]
    if revoked_at is not None:
        raise Problem(401, "unauthenticated", f"this API token (id {token_id}) was revoked on "
                      f"{revoked_at:%Y-%m-%d %H:%M %Z}; ask an operator for a new one",
                      headers=invalid)
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise Problem(401, "unauthenticated", f"this API token (id {token_id}) expired on "
                      f"{expires_at:%Y-%m-%d %H:%M %Z}; ask an operator for a new one",
                      headers=invalid)
    return Principal(int(token_id), name, Role(role), scope_plant, scope_region,
                     None if plant_ids is None else frozenset(int(i) for i in plant_ids))
