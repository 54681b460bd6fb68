"""Mini-program sessions: `wx.login()`'s one-time code is exchanged at WeChat (jscode2session) for
the shopper's openid/unionid; siyu answers with its own short-lived session token, HMAC-signed with a
per-brand secret, so later calls need no lookup to know who is calling."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from chalicelib import secrets
from chalicelib.errors import ApiError, Unauthorized
from chalicelib.observability import logger
from chalicelib.domain.members import Shopper
from chalicelib.services.wechat_apps import api_for, app_for
from chalicelib.storage import members as member_store, tenancy
from chalicelib.wechat.client import WeChatError

SESSION_TTL = 2 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(brand, purpose: str = "") -> bytes:
    """The brand's session key; another `purpose` (guide sessions) gets a key derived from it, so a
    token of one kind is never accepted as the other."""
    key = secrets.brand_secrets(brand.secret_ref)["session_secret"].encode()
    return hmac.new(key, purpose.encode(), hashlib.sha256).digest() if purpose else key


def issue(brand, claims: dict, *, now: float | None = None, purpose: str = "",
          ttl: int = SESSION_TTL, expires: int | None = None) -> tuple[str, int]:
    expires = int(now or time.time()) + ttl if expires is None else expires
    payload = _b64(json.dumps({**claims, "b": brand.brand_id, "exp": expires}, separators=(",", ":")).encode())
    mac = _b64(hmac.new(_key(brand, purpose), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{mac}", expires


def verify(brand_id: str, headers, *, now: float | None = None, purpose: str = "",
           login_path: str = "/mp/{brand_id}/login") -> dict:
    """The claims of the caller's session token (`Authorization: Bearer <session>`), or 401."""
    brand = tenancy.require_brand(brand_id)
    value = (headers or {}).get("authorization") or ""
    scheme, _, token = value.partition(" ")
    payload, _, mac = token.strip().partition(".")
    if scheme.lower() != "bearer" or not payload or not mac:
        raise Unauthorized(f"send Authorization: Bearer <session> from POST {login_path}",
                           code="missing_session")
    expected = _b64(hmac.new(_key(brand, purpose), payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, mac):
        raise Unauthorized("session token is not valid for this brand", code="invalid_session")
    try:
        claims = json.loads(_unb64(payload))
    except ValueError:
        raise Unauthorized("session token is not valid for this brand", code="invalid_session") from None
    if claims.get("b") != brand_id:
        raise Unauthorized("session token is not valid for this brand", code="invalid_session")
    if claims.get("exp", 0) < (now or time.time()):
        raise Unauthorized("session expired; log in again", code="session_expired")
    return claims


def login(brand_id: str, code: str) -> dict:
    """Exchange a wx.login() code for a siyu session. 401 for a bad or reused code."""
    brand = tenancy.require_brand(brand_id)
    app = app_for(brand, "mp")
    try:
        session = api_for(app).jscode2session(app.app_id, app.secret, code)
    except WeChatError as err:
        if err.errcode in (40029, 40163, 40226):
            reason = {40029: "invalid_code", 40163: "code_used", 40226: "user_blocked"}[err.errcode]
            raise Unauthorized(f"WeChat refused the login code: {err.errmsg}", code=reason) from None
        logger.warning("jscode2session failed", extra={"brand_id": brand_id, "errcode": err.errcode})
        raise ApiError("WeChat did not answer the login; try again", code="wechat_unavailable", status=503) from None
    claims = {"o": session["openid"]}
    if session.get("unionid"):
        claims["u"] = session["unionid"]
    # a returning shopper's session names their member (one BatchGetItem here, none in every later call)
    member_id = member_store.settled_member_of(brand_id, _identities(claims))
    if member_id is not None:
        claims["m"] = member_id
    token, expires = issue(brand, claims)
    return {"session": token, "expires_at": expires, "openid": session["openid"]}


def _identities(claims: dict) -> list[tuple[str, str]]:
    return Shopper(mp=claims["o"], unionid=claims.get("u")).identities()


def naming_member(brand_id: str, claims: dict, member_id: str) -> str:
    """The caller's session again (same shopper, same expiry), now naming the member it belongs to
    for good: `member_id` must be what every identity the session carries resolves to
    (domain.members.settled_member, as after a touch that linked them all). Calls made with it
    (a claim, the wallet, the member code) then read no identity link (domain.members.session_member).
    A session naming no member keeps working: those calls resolve the member from the links."""
    kept = {k: v for k, v in claims.items() if k not in ("b", "exp")}
    token, _expires = issue(tenancy.require_brand(brand_id), {**kept, "m": member_id}, expires=claims.get("exp"))
    return token


def scan(brand_id: str, claims: dict, body: dict) -> dict:
    """POST /mp/{brand}/scan: the touch (services.onboarding), answered with the session renamed: the
    touch linked every identity the session carries to the member, so from now on it names them."""
    from chalicelib.services import onboarding
    answer = onboarding.scan_from_mini_program(brand_id, claims, body)
    return {**answer, "session": naming_member(brand_id, claims, answer["member_id"])}
