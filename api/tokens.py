"""API tokens: creation, revocation and listing (the ``energymon token`` commands).

A token is ``emk_`` + 32 random bytes in base64url (43 characters): 256 bits from
:func:`secrets.token_bytes`. Only its SHA-256 is stored (``api_tokens.secret_sha256``), so a
copy of the database reveals no usable token. SHA-256 rather than a slow password hash is
deliberate: with 256 bits of entropy there is nothing to brute-force, and authentication stays
one index probe per request. The secret is shown once, at creation.

These functions run as the database owner (CLI); the API itself can only call
``energymon_api_authenticate(hash)`` and never reads the table.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import psycopg

TOKEN_PREFIX = "emk_"
TOKEN_BYTES = 32


class Role(StrEnum):
    PLANT = "plant"            # one plant: read its data, push its readings
    REGULATOR = "regulator"    # every plant of a region subtree, read only
    AUDITOR = "auditor"        # a region subtree or everything, read only (history, exports)
    ADMIN = "admin"            # everything, registry writes


class TokenError(ValueError):
    """A token request that cannot be honoured (message names the field)."""


def new_secret() -> str:
    raw = secrets.token_bytes(TOKEN_BYTES)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def hash_secret(secret: str) -> bytes:
    """SHA-256 of the whole token string (what ``api_tokens.secret_sha256`` holds)."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


def looks_like_token(value: str) -> bool:
    return value.startswith(TOKEN_PREFIX) and 40 <= len(value) <= 100


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    role: str
    scope: str                 # "plant:<code>", "region:<code>" or "all"
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= datetime.now(self.expires_at.tzinfo):
            return "expired"
        return "active"


def create_token(conn: psycopg.Connection, *, name: str, role: Role | str,
                 plant: str | None = None, region: str | None = None,
                 expires_at: datetime | None = None) -> tuple[int, str]:
    """Store a new token; returns (id, secret). The secret is not stored and cannot be shown
    again."""
    role = Role(role)
    if role is Role.PLANT and (plant is None or region is not None):
        raise TokenError("role 'plant' needs --plant PLANT_ID (and no --region)")
    if role is not Role.PLANT and plant is not None:
        raise TokenError(f"role {role.value!r} is scoped by --region (or nothing), not --plant")
    if role is Role.REGULATOR and region is None:
        raise TokenError("role 'regulator' needs --region REGION_CODE (GB/T 2260)")
    if role is Role.ADMIN and region is not None:
        raise TokenError("role 'admin' sees everything; it takes no --region")
    if not name.strip():
        raise TokenError("--name must not be empty")
    if expires_at is not None and expires_at.tzinfo is None:
        raise TokenError("--expires needs a UTC offset or a date")
    plant_id = None
    if plant is not None:
        row = conn.execute("SELECT id FROM plants WHERE code = %s", (plant,)).fetchone()
        if row is None:
            raise TokenError(f"plant {plant!r} is not in the registry "
                             "(energymon registry load FLEET)")
        plant_id = row[0]
    if region is not None and conn.execute(
            "SELECT 1 FROM regions WHERE code = %s", (region,)).fetchone() is None:
        raise TokenError(f"region {region!r} is not in the registry")
    secret = new_secret()
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO api_tokens (name, secret_sha256, role, scope_plant_id, "
            "scope_region_code, expires_at) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (name.strip(), hash_secret(secret), role.value, plant_id, region, expires_at),
        ).fetchone()
    assert row is not None
    return int(row[0]), secret


def revoke_token(conn: psycopg.Connection, token_id: int) -> bool:
    """Revoke a token at once (True), or False when no active token has that id."""
    with conn.transaction():
        cur = conn.execute("UPDATE api_tokens SET revoked_at = now() "
                           "WHERE id = %s AND revoked_at IS NULL", (token_id,))
    return cur.rowcount == 1


def list_tokens(conn: psycopg.Connection) -> list[TokenInfo]:
    rows = conn.execute(
        "SELECT t.id, t.name, t.role, "
        "CASE WHEN p.code IS NOT NULL THEN 'plant:' || p.code "
        "     WHEN t.scope_region_code IS NOT NULL THEN 'region:' || t.scope_region_code "
        "     ELSE 'all' END, "
        "t.created_at, t.expires_at, t.revoked_at, t.last_used_at "
        "FROM api_tokens t LEFT JOIN plants p ON p.id = t.scope_plant_id ORDER BY t.id"
    ).fetchall()
    return [TokenInfo(*row) for row in rows]
