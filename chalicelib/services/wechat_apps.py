"""A brand's WeChat apps: their callback credentials and API clients, resolved from the brand item
(public ids) and its SSM secrets, cached per container."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from chalicelib import secrets
from chalicelib.errors import NotFound
from chalicelib.resources import (WECHAT_BASE_URL_DEFAULT, WECHAT_BASE_URL_ENV, WECOM_BASE_URL_DEFAULT,
                                  WECOM_BASE_URL_ENV)
from chalicelib.storage.models import Brand

APPS = ("oa", "mp", "wecom")


@dataclass(frozen=True)
class App:
    brand_id: str
    kind: str                      # oa | mp | wecom
    app_id: str                    # appid, or corpid for WeCom (the receive id of encrypted callbacks)
    secret: str
    token: str
    encoding_aes_key: str | None
    suite_id: str | None = None    # WeCom third-party suite: its callbacks are encrypted for this id, not the corp id

    @property
    def receive_ids(self) -> tuple[str, ...]:
        """The receive ids an encrypted callback to this app may carry (the app id first)."""
        return (self.app_id, self.suite_id) if self.suite_id else (self.app_id,)


def app_for(brand: Brand, kind: str) -> App:
    """The brand's `kind` app, or 404 app_not_configured."""
    app_id = {"oa": brand.oa_app_id, "mp": brand.mp_app_id, "wecom": brand.wecom_corp_id}.get(kind)
    section = secrets.brand_secrets(brand.secret_ref).get(kind) if app_id else None
    if not app_id or not section:
        raise NotFound(f"brand {brand.brand_id} has no {kind} app configured", code="app_not_configured")
    return App(brand.brand_id, kind, app_id, section.get("app_secret") or section.get("secret"),
               section["token"], section.get("encoding_aes_key"),
               suite_id=brand.wecom_suite_id if kind == "wecom" else None)


def base_url(kind: str) -> str:
    if kind == "wecom":
        return os.environ.get(WECOM_BASE_URL_ENV, WECOM_BASE_URL_DEFAULT)
    return os.environ.get(WECHAT_BASE_URL_ENV, WECHAT_BASE_URL_DEFAULT)


_apis: dict[tuple[str, str, str], object] = {}
_lock = threading.Lock()


def api_for(app: App, *, timeout: float = 4.0):
    """The WeChat API client for this app. Its access token is shared by every container (one
    DynamoDB item per app, one refresher at a time: chalicelib.wechat.tokens)."""
    from chalicelib.wechat.client import WeChatApi, fetch_stable_token, fetch_wecom_token
    from chalicelib.wechat.tokens import SharedTokenSource
    url = base_url(app.kind)
    key = (app.brand_id, app.kind, app.app_id, url)
    with _lock:
        tokens = _apis.get(key)
        if tokens is None:
            if app.kind == "wecom":
                tokens = SharedTokenSource(app.app_id, lambda force: fetch_wecom_token(url, app.app_id, app.secret))
            else:
                tokens = SharedTokenSource(app.app_id, lambda force: fetch_stable_token(
                    url, app.app_id, app.secret, force_refresh=force))
            _apis[key] = tokens
    return WeChatApi(url, tokens, timeout=timeout)
