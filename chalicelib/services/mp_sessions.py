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
from chalicelib.services.wechat_apps import api_for, app_for
from chalicelib.storage import tenancy
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
          ttl: int = SESSION_TTL) -> tuple[str, int]:
    expires = int(now or time.time()) + ttl
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
    token, expires = issue(brand, claims)
    return {"session": token, "expires_at": expires, "openid": session["openid"]}
