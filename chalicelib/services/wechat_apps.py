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


_apis: dict[tuple[str, str, str, str, str], object] = {}
_lock = threading.Lock()


def token_source(app: App, url: str, store=None):
    """This brand's token for this app, shared by every container through one item keyed by brand,
    kind and app id: two brands naming the same app id never share a token (a wrong secret gets
    WeChat's refusal, not the other brand's token)."""
    from chalicelib.wechat.client import fetch_stable_token, fetch_wecom_token
    from chalicelib.wechat.tokens import SharedTokenSource, token_key
    key = token_key(app.brand_id, app.kind, app.app_id)
    if app.kind == "wecom":
        return SharedTokenSource(key, lambda force: fetch_wecom_token(url, app.app_id, app.secret), store)
    return SharedTokenSource(key, lambda force: fetch_stable_token(url, app.app_id, app.secret, force_refresh=force),
                             store)


def api_for(app: App, *, timeout: float = 4.0):
    """The WeChat API client for this app. Its access token is shared by every container (one
    DynamoDB item per brand and app, one refresher at a time: chalicelib.wechat.tokens); the
    in-process cache is keyed the same way (and by secret: a rotated secret is a new source)."""
    from chalicelib.wechat.client import WeChatApi
    url = base_url(app.kind)
    key = (app.brand_id, app.kind, app.app_id, url, app.secret)
    with _lock:
        tokens = _apis.get(key)
        if tokens is None:
            tokens = _apis[key] = token_source(app, url)
    return WeChatApi(url, tokens, timeout=timeout, context={"brand_id": app.brand_id, "app": app.kind,
                                                            "app_id": app.app_id})
