"""Calling WeChat's server APIs from a Lambda: access tokens, error classes, one retry on a stale token.

urllib3 (already loaded by botocore) rather than requests: nothing extra on the cold-start path.

What a failure proves decides what a caller may do (the table: chalicelib.wechat.errors). Only a
failure that proves WeChat did not act is `transient`: no connection could be made (connect timeout,
refused, DNS), WeChat answered -1/45009/... or a 5xx other than 504. Once the request may have been
written, a missing answer is `OutcomeUnknown`: a read timeout, a reset or a truncated answer, a 504
(a gateway gave up waiting for WeChat, which may have acted), an unreadable 200. A reset on a reused
keep-alive connection before any response byte is unknown too: WeChat (or a balancer in front of
it) may have taken the request before the reset, and urllib3 already drops pooled connections it
sees closed before reusing them, so the benign idle-close case is rare; a rare `outcome_unknown`
costs one message, a wrong guess costs a duplicate.
"""
from __future__ import annotations

import json
import threading
from typing import Protocol

import urllib3
from urllib.parse import urlencode

from chalicelib.resources import send_concurrency
from chalicelib.wechat import errors as table

# failures raised before the request could be written: WeChat cannot have acted
_NOT_SENT = (urllib3.exceptions.ConnectTimeoutError,      # includes NewConnectionError, NameResolutionError
             urllib3.exceptions.EmptyPoolError, urllib3.exceptions.ClosedPoolError,
             urllib3.exceptions.LocationValueError)

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
    """A call that did not succeed; `verdict` (from the one error table) says what it means."""

    outcome_unknown = False

    def __init__(self, errcode: int, errmsg: str, api: str):
        super().__init__(f"{api}: {errcode} {errmsg}")
        self.errcode, self.errmsg, self.api = errcode, errmsg, api

    @property
    def verdict(self) -> table.Verdict:
        return table.classify(self.errcode, api=self.api, outcome_unknown=self.outcome_unknown)

    @property
    def transient(self) -> bool:
        """WeChat certainly did not act: the same call may be made again."""
        return self.verdict.kind == table.TRANSIENT

    @property
    def token_invalid(self) -> bool:
        return self.verdict.kind == table.TOKEN_INVALID

    @property
    def config_error(self) -> bool:
        """The account or deployment is misconfigured (IP whitelist, secret, app id, API rights)."""
        return self.verdict.kind == table.CONFIG

    @property
    def permanent(self) -> bool:
        """A refusal of this call that retrying cannot change (refused by the user, bad openid, bad
        template…); configuration errors and unknown outcomes are neither this nor transient."""
        return self.verdict.kind in (table.RECIPIENT, table.REQUEST)


class OutcomeUnknown(WeChatError):
    """The request may have reached WeChat and no answer says whether it acted. Never resend a
    message after this; a read (token, user info) may be repeated safely by its caller."""

    outcome_unknown = True

    def __init__(self, errmsg: str, api: str):
        super().__init__(table.SYSTEM_BUSY, errmsg, api)


class TokenSource(Protocol):
    def get(self) -> str: ...

    def expire(self, token: str) -> None: ...


def _answer_error(errcode: int, errmsg: str, api: str, context: dict | None) -> WeChatError:
    """The error for an answer WeChat gave; a configuration error is reported here, once for every
    caller, as an error log and the `WeChatConfigError` metric (alarmed on)."""
    err = WeChatError(errcode, errmsg, api)
    verdict = err.verdict
    if verdict.kind == table.CONFIG:
        from chalicelib.observability import count, logger
        logger.error(f"WeChat configuration error on {api}: {errcode} {errmsg}: {verdict.hint}",
                     extra={"wechat_api": api, "errcode": errcode, "errmsg": errmsg, "hint": verdict.hint,
                            **(context or {})})
        count("WeChatConfigError")
    return err


def _request(method: str, url: str, *, params: dict | None = None, json_body: dict | None = None,
             timeout: float, api: str, raw: bool = False, context: dict | None = None):
    if params:
        url += ("&" if "?" in url else "?") + urlencode(params)
    body = json.dumps(json_body, ensure_ascii=False).encode() if json_body is not None else None
    try:
        resp = _http().request(method, url, body=body, timeout=urllib3.Timeout(connect=min(2.0, timeout), read=timeout),
                               headers={"Content-Type": "application/json"} if body is not None else None)
    except _NOT_SENT as err:
        raise WeChatError(table.SYSTEM_BUSY, f"network, not sent: {type(err).__name__}", api) from None
    except Exception as err:  # noqa: BLE001 - read timeout, reset, truncated answer...: WeChat may have acted
        raise OutcomeUnknown(f"network, outcome unknown: {type(err).__name__}", api) from None
    if resp.status == 504:
        raise OutcomeUnknown("HTTP 504 (a gateway stopped waiting for WeChat)", api)
    if resp.status >= 500:
        raise WeChatError(table.SYSTEM_BUSY, f"HTTP {resp.status}", api)
    if raw and not resp.headers.get("Content-Type", "").startswith("application/json"):
        return resp.data
    try:
        data = json.loads(resp.data)
    except (ValueError, RecursionError):
        if resp.status < 400:
            raise OutcomeUnknown(f"unreadable answer (HTTP {resp.status})", api) from None
        raise WeChatError(table.SYSTEM_BUSY, f"HTTP {resp.status}", api) from None
    if not isinstance(data, dict):
        raise OutcomeUnknown(f"unexpected answer (HTTP {resp.status})", api)
    if resp.status >= 400 and not data.get("errcode"):
        raise WeChatError(table.SYSTEM_BUSY, f"HTTP {resp.status}", api)
    if data.get("errcode"):
        try:
            errcode = int(data["errcode"])
        except (TypeError, ValueError):
            raise OutcomeUnknown(f"unreadable errcode (HTTP {resp.status})", api) from None
        raise _answer_error(errcode, str(data.get("errmsg", "")), api, context)
    return data


def fetch_stable_token(base_url: str, app_id: str, secret: str, force_refresh: bool = False,
                       timeout: float = 4.0) -> tuple[str, int]:
    """An access token from `cgi-bin/stable_token`, which does not invalidate tokens other callers hold."""
    data = _request("POST", f"{base_url}/cgi-bin/stable_token", timeout=timeout, api="cgi-bin/stable_token",
                    json_body={"grant_type": "client_credential", "appid": app_id, "secret": secret,
                               "force_refresh": force_refresh}, context={"app_id": app_id})
    return data["access_token"], int(data.get("expires_in", 7200))


def fetch_wecom_token(base_url: str, corp_id: str, secret: str, timeout: float = 4.0) -> tuple[str, int]:
    data = _request("GET", f"{base_url}/cgi-bin/gettoken", params={"corpid": corp_id, "corpsecret": secret},
                    timeout=timeout, api="cgi-bin/gettoken", context={"app_id": corp_id})
    return data["access_token"], int(data.get("expires_in", 7200))


class WeChatApi:
    """One app's API. Calls carry its access token; a token WeChat calls invalid is expired at the
    source (only that token) and the call is retried once with a fresh one."""

    def __init__(self, base_url: str, tokens: TokenSource | None, *, timeout: float = 4.0,
                 context: dict | None = None):
        self.base_url, self.tokens, self.timeout = base_url.rstrip("/"), tokens, timeout
        self.context = context or {}           # who is calling (brand, app): for configuration-error logs

    def _token(self) -> str:
        try:
            return self.tokens.get()
        except OutcomeUnknown as err:
            # a token fetch that timed out is safe to repeat, and the call itself was not made:
            # for the caller this is a proven non-delivery, not an unknown outcome
            raise WeChatError(table.SYSTEM_BUSY, f"no access token: {err.errmsg}", err.api) from None

    def call(self, method: str, path: str, *, params: dict | None = None, json_body: dict | None = None,
             raw: bool = False, with_token: bool = True):
        """One call. Raises WeChatError (OutcomeUnknown when the call may have been acted on)."""
        path = path.lstrip("/")
        for attempt in (1, 2):
            query = dict(params or {})
            token = None
            if with_token:
                token = self._token()
                query["access_token"] = token
            try:
                return _request(method, f"{self.base_url}/{path}", params=query, json_body=json_body,
                                timeout=self.timeout, api=path, raw=raw, context=self.context)
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
