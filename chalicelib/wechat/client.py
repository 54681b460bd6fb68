"""Calling WeChat's server APIs from a Lambda: access tokens, error classes, one retry on a stale token.

urllib3 (already loaded by botocore) rather than requests: nothing extra on the cold-start path.
"""
from __future__ import annotations

import json
import threading
from typing import Protocol

import urllib3
from urllib.parse import urlencode

from chalicelib.resources import send_concurrency

TRANSIENT = {-1, 45009, 45011, 45033}        # system busy, API frequency limits
TOKEN_INVALID = {40001, 40014, 42001}        # invalid / malformed / expired access_token

_pool: urllib3.PoolManager | None = None
_pool_lock = threading.Lock()


def _http() -> urllib3.PoolManager:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                # one kept-alive connection per call a sender has in flight
                _pool = urllib3.PoolManager(maxsize=max(32, send_concurrency()), retries=False)
    return _pool


class WeChatError(Exception):
    def __init__(self, errcode: int, errmsg: str, api: str):
        super().__init__(f"{api}: {errcode} {errmsg}")
        self.errcode, self.errmsg, self.api = errcode, errmsg, api

    @property
    def transient(self) -> bool:
        return self.errcode in TRANSIENT

    @property
    def token_invalid(self) -> bool:
        return self.errcode in TOKEN_INVALID

    @property
    def permanent(self) -> bool:
        """Retrying the same call cannot succeed (refused by the user, bad openid, bad template…)."""
        return not (self.transient or self.token_invalid)


class TokenSource(Protocol):
    def get(self) -> str: ...

    def expire(self, token: str) -> None: ...


def _request(method: str, url: str, *, params: dict | None = None, json_body: dict | None = None,
             timeout: float, api: str, raw: bool = False):
    if params:
        url += ("&" if "?" in url else "?") + urlencode(params)
    body = json.dumps(json_body, ensure_ascii=False).encode() if json_body is not None else None
    try:
        resp = _http().request(method, url, body=body, timeout=urllib3.Timeout(connect=min(2.0, timeout), read=timeout),
                               headers={"Content-Type": "application/json"} if body is not None else None)
    except urllib3.exceptions.HTTPError as err:       # timeouts, refused connections
        raise WeChatError(-1, f"network: {type(err).__name__}", api) from None
    if resp.status >= 500:
        raise WeChatError(-1, f"HTTP {resp.status}", api)
    if raw and not resp.headers.get("Content-Type", "").startswith("application/json"):
        return resp.data
    try:
        data = json.loads(resp.data)
    except ValueError:
        raise WeChatError(-1, f"unreadable answer (HTTP {resp.status})", api) from None
    if resp.status >= 400 and not data.get("errcode"):
        raise WeChatError(-1, f"HTTP {resp.status}", api)
    if data.get("errcode"):
        raise WeChatError(int(data["errcode"]), str(data.get("errmsg", "")), api)
    return data


def fetch_stable_token(base_url: str, app_id: str, secret: str, force_refresh: bool = False,
                       timeout: float = 4.0) -> tuple[str, int]:
    """An access token from `cgi-bin/stable_token`, which does not invalidate tokens other callers hold."""
    data = _request("POST", f"{base_url}/cgi-bin/stable_token", timeout=timeout, api="cgi-bin/stable_token",
                    json_body={"grant_type": "client_credential", "appid": app_id, "secret": secret,
                               "force_refresh": force_refresh})
    return data["access_token"], int(data.get("expires_in", 7200))


def fetch_wecom_token(base_url: str, corp_id: str, secret: str, timeout: float = 4.0) -> tuple[str, int]:
    data = _request("GET", f"{base_url}/cgi-bin/gettoken", params={"corpid": corp_id, "corpsecret": secret},
                    timeout=timeout, api="cgi-bin/gettoken")
    return data["access_token"], int(data.get("expires_in", 7200))


class WeChatApi:
    """One app's API. Calls carry its access token; a token WeChat calls invalid is expired at the
    source (only that token) and the call is retried once with a fresh one."""

    def __init__(self, base_url: str, tokens: TokenSource | None, *, timeout: float = 4.0):
        self.base_url, self.tokens, self.timeout = base_url.rstrip("/"), tokens, timeout

    def call(self, method: str, path: str, *, params: dict | None = None, json_body: dict | None = None,
             raw: bool = False, with_token: bool = True):
        path = path.lstrip("/")
        for attempt in (1, 2):
            query = dict(params or {})
            token = None
            if with_token:
                token = self.tokens.get()
                query["access_token"] = token
            try:
                return _request(method, f"{self.base_url}/{path}", params=query, json_body=json_body,
                                timeout=self.timeout, api=path, raw=raw)
            except WeChatError as err:
                if attempt == 1 and token is not None and err.token_invalid:
                    self.tokens.expire(token)
                    continue
                raise

    def jscode2session(self, app_id: str, secret: str, code: str) -> dict:
        return self.call("GET", "sns/jscode2session", with_token=False, params={
            "appid": app_id, "secret": secret, "js_code": code, "grant_type": "authorization_code"})

    def user_info(self, openid: str) -> dict:
        return self.call("GET", "cgi-bin/user/info", params={"openid": openid, "lang": "zh_CN"})

    def external_contact(self, external_userid: str) -> dict:
        return self.call("GET", "cgi-bin/externalcontact/get", params={"external_userid": external_userid})

    def subscribe_send(self, touser: str, template_id: str, data: dict, page: str | None = None) -> dict:
        body = {"touser": touser, "template_id": template_id, "data": data}
        if page:
            body["page"] = page
        return self.call("POST", "cgi-bin/message/subscribe/send", json_body=body)

    def template_send(self, touser: str, template_id: str, data: dict, url: str | None = None,
                      miniprogram: dict | None = None) -> dict:
        body = {"touser": touser, "template_id": template_id, "data": data}
        if url:
            body["url"] = url
        if miniprogram:
            body["miniprogram"] = miniprogram
        return self.call("POST", "cgi-bin/message/template/send", json_body=body)

    def custom_send_text(self, touser: str, content: str) -> dict:
        return self.call("POST", "cgi-bin/message/custom/send",
                         json_body={"touser": touser, "msgtype": "text", "text": {"content": content}})

    def send_welcome_msg(self, welcome_code: str, text: str) -> dict:
        return self.call("POST", "cgi-bin/externalcontact/send_welcome_msg",
                         json_body={"welcome_code": welcome_code, "text": {"content": text}})

    def add_msg_template(self, external_userids: list[str], text: str, sender: str | None = None) -> dict:
        body = {"chat_type": "single", "external_userid": external_userids, "text": {"content": text}}
        if sender:
            body["sender"] = sender
        return self.call("POST", "cgi-bin/externalcontact/add_msg_template", json_body=body)

    def wxacode_unlimited(self, scene: str, page: str | None = None) -> bytes:
        body = {"scene": scene}
        if page:
            body["page"] = page
        return self.call("POST", "wxa/getwxacodeunlimit", json_body=body, raw=True)
