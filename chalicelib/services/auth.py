"""Who is calling: `Authorization: Bearer <key>` resolved to a principal (platform, one brand's
admin, or one store's POS) through the key's SHA-256; keys themselves are never stored."""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from chalicelib.errors import Forbidden, Unauthorized
from chalicelib.storage import tenancy

KEY_PREFIX = {"platform": "sk_plat_", "brand_admin": "sk_brand_", "store_pos": "sk_pos_"}


@dataclass(frozen=True)
class Principal:
    role: str
    brand_id: str | None = None
    store_id: str | None = None


def new_key(role: str) -> str:
    """A fresh random key (256 bits); shown to its owner once, stored only as a hash."""
    return KEY_PREFIX[role] + secrets.token_urlsafe(32)


def authenticate(headers) -> Principal:
    value = (headers or {}).get("authorization") or ""
    scheme, _, key = value.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("send Authorization: Bearer <key>", code="missing_key")
    found = tenancy.principal_for_key(key.strip())
    if found is None:
        raise Unauthorized("unknown or revoked key", code="invalid_key")
    return Principal(found.role, found.brand_id, found.store_id)


def require_platform(p: Principal) -> None:
    if p.role != "platform":
        raise Forbidden("this needs the platform key", code="forbidden")


def require_brand_admin(p: Principal, brand_id: str) -> None:
    """The platform (which runs the brands) or this brand's admin; never another brand's key."""
    if p.role == "platform" or (p.role == "brand_admin" and p.brand_id == brand_id):
        return
    raise Forbidden(f"this key may not manage brand {brand_id}", code="forbidden")


def require_store(p: Principal, brand_id: str, store_id: str) -> None:
    if p.role == "store_pos" and p.brand_id == brand_id and p.store_id == store_id:
        return
    raise Forbidden(f"this key may not act for store {store_id} of brand {brand_id}", code="forbidden")
