"""Printable codes (issue 11 §1): the code WeChat issues for a channel, created once and kept in S3.

`GET /admin/{brand}/channels/{scene}/code?app=oa|mp|wecom` claims the code (storage.codes.claim: one
conditional transaction with the quota count), calls WeChat once, stores the PNG and answers it;
every later request reads S3 and calls WeChat for nothing.

What a WeChat failure proves decides the claim's fate (chalicelib.wechat.errors):
- a proven refusal (or a call never made) releases the claim and its quota unit: nothing happened;
- an unknown outcome marks the claim `unknown`; the next request takes it over and, for WeCom (where
  a second add_contact_way would make a second contact way), first looks for the contact way the
  lost call may have made (list_contact_way + get_contact_way, matched by `state` = the scene), so an
  unknown outcome leaves neither a duplicate nor a stuck claim. OA's QR_LIMIT_STR_SCENE with the same
  scene_str and getwxacodeunlimit are safe to repeat;
- a holder that died (a Lambda timeout between claim and answer) leaves a claim that is taken over
  once its lease (CLAIM_LEASE_SECONDS) has run out.
"""
from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

from pynamodb.exceptions import DoesNotExist

from chalicelib.domain import codes as rules
from chalicelib.errors import ApiError, BadRequest, Conflict, NotFound, TooManyRequests
from chalicelib.ids import new_id
from chalicelib.observability import logger, metrics, _metrics_lock
from chalicelib.resources import SHOWQRCODE_BASE_URL_DEFAULT, SHOWQRCODE_BASE_URL_ENV
from chalicelib.services.wechat_apps import api_for, app_for
from chalicelib.storage import codes as code_store
from chalicelib.storage import tenancy
from chalicelib.storage.models import Channel, ChannelCode, Guide
from chalicelib.wechat.client import OutcomeUnknown, WeChatApi, WeChatError

WAIT_FOR_OTHER_SECONDS = 8.0       # a concurrent first request waits this long for the creator
POLL_SECONDS = 0.1
RECONCILE_WINDOW_SECONDS = 86_400
RECONCILE_PAGES = 20


class RetryLater(ApiError):
    status, code = 503, "code_not_ready"

    def __init__(self, message: str, *, code: str, retry_after: int = 2, status: int = 503):
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after

    def headers(self) -> dict:
        return {"Retry-After": str(self.retry_after)}


def _now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def get_channel(brand_id: str, scene: str) -> Channel:
    try:
        return Channel.get(tenancy.brand_pk(brand_id), f"CHANNEL#{scene}", consistent_read=True)
    except DoesNotExist:
        raise NotFound(f"no channel code for scene {scene}", code="unknown_channel") from None


def guide_user(brand_id: str, guide_id: str | None) -> str | None:
    if not guide_id:
        return None
    try:
        return Guide.get(tenancy.brand_pk(brand_id), f"GUIDE#{guide_id}").wecom_user_id
    except DoesNotExist:
        return None


def _wecom_user(brand_id: str, channel: Channel) -> str:
    user = guide_user(brand_id, channel.guide_id)
    if not user:
        raise Conflict(f"channel {channel.scene} names no guide with a wecom_user_id: a WeCom contact-me code "
                       "adds a guide, so give the channel a guide who has one", code="channel_has_no_wecom_guide")
    return user


# ---- reading a code --------------------------------------------------------------------------

def code(brand_id: str, scene: str, query: dict | None) -> tuple[str, object]:
    """("image/png", bytes) or ("application/json", view) of the channel's code for `?app=`."""
    app, fmt = rules.parse_request(query)
    skip_verify = (query or {}).get("skip_verify", "true")
    if skip_verify not in ("true", "false"):
        raise BadRequest("skip_verify must be true or false", code="invalid_skip_verify")
    item = ensure(brand_id, scene, app, skip_verify=skip_verify == "true")
    if fmt == "json":
        return "application/json", view(item)
    return "image/png", code_store.get_png(item.s3_key)


def view(item: ChannelCode) -> dict:
    out = {"app": item.app, "scene": item.scene, "url": item.url, "created_at": item.created_at,
           "expires_at": item.code_expires_at}
    if item.app == "oa":
        out["ticket"] = item.ticket
    if item.app == "wecom":
        out["config_id"] = item.config_id
        out["user_id"] = item.user_id
    return out


def ensure(brand_id: str, scene: str, app: str, *, skip_verify: bool = True, clock=time.time,
           sleep=time.sleep, pace_seconds: float = 0.0) -> ChannelCode:
    """The channel's ready code for `app`, created through WeChat if it does not exist yet.
    `pace_seconds`: how long a bulk caller may wait for the next minute when mp's per-minute rate is
    used up (0: answer 429 with Retry-After instead)."""
    brand = tenancy.require_brand(brand_id)
    channel = get_channel(brand_id, scene)
    rules.check_scene(app, scene)
    wapp = app_for(brand, app)                                # 404 app_not_configured
    user = _wecom_user(brand_id, channel) if app == "wecom" else None
    deadline = clock() + WAIT_FOR_OTHER_SECONDS
    while True:
        now = clock()
        item = code_store.get_code(brand_id, scene, app)
        if item is not None and item.status == "ready":
            return item
        if item is None:
            claim_id = new_id("cl")
            try:
                code_store.claim(brand_id, scene, app, claim_id, now)
            except code_store.CodeExists:
                continue
            except code_store.QuotaFull as full:
                wait = rules.seconds_to_next_minute(now)
                if full.label == "rate" and wait <= pace_seconds:
                    logger.info("mp code rate used up: pacing to the next minute", extra={"brand_id": brand_id})
                    sleep(wait)
                    continue
                raise _quota_refusal(brand_id, app, full.label, wait) from None
            _report_quota(brand_id, app)
            item = ChannelCode(code_store._pk(brand_id), code_store.code_sk(scene, app), brand_id=brand_id, scene=scene,
                               app=app, status="claimed", claim_id=claim_id, claimed_at=now)
            return _create(wapp, channel, item, claim_id, user=user, skip_verify=skip_verify, takeover=False)
        if item.status == "unknown" or rules.claim_expired(item.claimed_at, now):
            claim_id = new_id("cl")
            if code_store.take_over(item, claim_id, now):
                item.claim_id = claim_id
                return _create(wapp, channel, item, claim_id, user=user, skip_verify=skip_verify, takeover=True)
            continue
        if now >= deadline:
            raise RetryLater(f"the {app} code of {scene} is being created by another request", code="code_being_created")
        sleep(POLL_SECONDS)


def _quota_refusal(brand_id: str, app: str, label: str, wait: int) -> ApiError:
    if label == "rate":
        refusal = RetryLater(f"mini-program codes are limited to {rules.MP_PER_MINUTE} a minute; retry in {wait} s",
                             code="code_rate_limited", retry_after=wait, status=TooManyRequests.status)
        return refusal
    logger.warning("code quota reached", extra={"brand_id": brand_id, "app": app})
    return Conflict(f"brand {brand_id} has created its {rules.quota(app)} {app} codes, WeChat's limit: "
                    "reuse an existing channel's code", code="code_quota_exceeded")


def _report_quota(brand_id: str, app: str) -> None:
    """The share of the app's quota in use, as a metric the 80% alarm watches (infra)."""
    if rules.quota(app) is None:
        return
    percent = rules.used_percent(app, code_store.used(brand_id, app))
    with _metrics_lock:
        metrics.add_metric(name=f"{app.title()}CodeQuotaUsedPercent", unit="Percent", value=percent)
    if percent >= rules.ALARM_SHARE * 100:
        logger.warning("code quota above 80%", extra={"brand_id": brand_id, "app": app, "used_percent": percent})


def _create(wapp, channel: Channel, item: ChannelCode, claim_id: str, *, user: str | None, skip_verify: bool,
            takeover: bool) -> ChannelCode:
    """Holding the claim: create the code at WeChat (unless an earlier holder got that far), store its
    PNG, mark it ready."""
    api = api_for(wapp)
    app, scene = item.app, item.scene
    png = None
    if item.status != "created":
        fields = _reconcile(api, scene, user) if (app == "wecom" and takeover) else None
        if fields is None:
            try:
                fields, png = _call_wechat(api, app, scene, channel, user, skip_verify)
            except OutcomeUnknown:
                fields = _reconcile(api, scene, user) if app == "wecom" else None
                if fields is None:
                    code_store.advance(item, claim_id, "unknown")
                    raise RetryLater("WeChat did not answer whether it created the code; retry", code="code_outcome_unknown",
                                     retry_after=1) from None
            except WeChatError as err:
                code_store.release(item.brand_id, scene, app, claim_id)
                raise _wechat_refusal(err, app) from None
        if not code_store.advance(item, claim_id, "created", **fields):
            raise RetryLater("another request took the code over", code="code_being_created")
        for key, value in fields.items():
            setattr(item, key, value)
    try:
        if png is None:
            png = _fetch_image(item)
        key = rules.object_key(item.brand_id, app, scene)
        code_store.put_png(key, png)
    except WeChatError:
        # the ids are kept: the next request (at once: the lease is given up) fetches the image again
        code_store.advance(item, claim_id, "created", claimed_at=0)
        raise RetryLater("WeChat did not serve the code's image; retry", code="code_image_unavailable") from None
    now = time.time()
    if not code_store.advance(item, claim_id, "ready", s3_key=key, created_at=_now_iso(now)):
        raise RetryLater("another request took the code over", code="code_being_created")
    item.status, item.s3_key, item.created_at = "ready", key, _now_iso(now)
    logger.info("code created", extra={"brand_id": item.brand_id, "scene": scene, "app": app})
    return item


def _call_wechat(api: WeChatApi, app: str, scene: str, channel: Channel, user: str | None,
                 skip_verify: bool) -> tuple[dict, bytes | None]:
    if app == "oa":
        got = api.call("POST", "cgi-bin/qrcode/create", json_body={
            "action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": scene}}})
        return {"ticket": got["ticket"], "url": got.get("url"),
                "image_url": f"cgi-bin/showqrcode?ticket={got['ticket']}"}, None
    if app == "mp":
        page = channel.page or rules.DEFAULT_MP_PAGE
        png = api.wxacode_unlimited(scene, page)
        if not isinstance(png, bytes):
            raise OutcomeUnknown("getwxacodeunlimit answered JSON without an image", "wxa/getwxacodeunlimit")
        return {"url": f"{page}?scene={scene}"}, png
    got = api.call("POST", "cgi-bin/externalcontact/add_contact_way", json_body={
        "type": 1, "scene": 2, "state": scene, "user": [user], "skip_verify": skip_verify,
        "remark": f"siyu {channel.scene}"[:30]})
    return {"config_id": got["config_id"], "url": got.get("qr_code"), "image_url": got.get("qr_code"),
            "user_id": user}, None


def _reconcile(api: WeChatApi, scene: str, user: str | None) -> dict | None:
    """The contact way an earlier call with an unknown outcome may have made: the one whose state is
    this scene (siyu gives each channel's contact way its scene as state, and makes one per scene)."""
    now = int(time.time())
    cursor = ""
    for _page in range(RECONCILE_PAGES):
        try:
            got = api.call("POST", "cgi-bin/externalcontact/list_contact_way", json_body={
                "start_time": now - RECONCILE_WINDOW_SECONDS, "end_time": now + 60, "cursor": cursor, "limit": 100})
            for entry in got.get("contact_way") or []:
                way = api.call("POST", "cgi-bin/externalcontact/get_contact_way",
                               json_body={"config_id": entry["config_id"]}).get("contact_way") or {}
                if way.get("state") == scene:
                    return {"config_id": way["config_id"], "url": way.get("qr_code"), "image_url": way.get("qr_code"),
                            "user_id": (way.get("user") or [user])[0]}
        except WeChatError as err:
            logger.warning("contact way reconciliation failed", extra={"scene": scene, "errcode": err.errcode})
            raise RetryLater("WeChat did not answer whether the code exists; retry", code="code_outcome_unknown",
                             retry_after=1) from None
        cursor = got.get("next_cursor") or ""
        if not cursor:
            return None
    raise RetryLater("too many contact ways to search; retry", code="code_outcome_unknown")


def _fetch_image(item: ChannelCode) -> bytes:
    if item.app == "oa":
        base = os.environ.get(SHOWQRCODE_BASE_URL_ENV, SHOWQRCODE_BASE_URL_DEFAULT)
        return WeChatApi(base, None).call("GET", "cgi-bin/showqrcode", params={"ticket": item.ticket}, raw=True,
                                          with_token=False)
    parts = urlsplit(item.image_url or "")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return WeChatApi(f"{parts.scheme}://{parts.netloc}", None).call("GET", path, raw=True, with_token=False)


def _wechat_refusal(err: WeChatError, app: str) -> ApiError:
    if err.transient:
        return RetryLater(f"WeChat is busy ({err.errcode}); retry", code="wechat_unavailable", retry_after=5)
    if err.config_error:
        return ApiError(f"WeChat refused the {app} app's call: {err.verdict.hint}", code="wechat_config_error",
                        status=409)
    return ApiError(f"WeChat refused to create the code: {err.errcode} {err.errmsg}", code="wechat_refused",
                    status=409)


# ---- the channel changes, its codes follow ---------------------------------------------------

def delete_channel(brand_id: str, scene: str) -> dict:
    """Delete a channel code. Its WeCom contact way is deleted at WeCom (freeing the quota unit) and its
    mini-program code dropped; its OA code stays recorded: WeChat never deletes a permanent QR code,
    and a channel made again with this scene gets the same one back."""
    brand = tenancy.require_brand(brand_id)
    get_channel(brand_id, scene)
    for item in code_store.codes_of_channel(brand_id, scene):
        if item.app == "wecom":
            if item.status not in ("created", "ready") and not rules.claim_expired(item.claimed_at, time.time()):
                raise RetryLater("the channel's WeCom code is being created; retry", code="code_being_created")
            config_id = item.config_id or (_reconcile(api_for(app_for(brand, "wecom")), scene, None) or {}).get(
                "config_id")
            if config_id:
                try:
                    api_for(app_for(brand, "wecom")).call("POST", "cgi-bin/externalcontact/del_contact_way",
                                                          json_body={"config_id": config_id})
                except WeChatError as err:
                    if not err.permanent:
                        raise _wechat_refusal(err, "wecom") from None
                    # a contact way WeCom no longer knows is as good as deleted
            code_store.forget(item, give_back=True)
        elif item.app == "mp":
            code_store.delete_record(item)
        else:
            continue
        if item.s3_key:
            code_store.delete_png(item.s3_key)
    code_store.delete_channel(brand_id, scene)
    return {"scene": scene, "deleted": True}


def update_channel(brand_id: str, scene: str, body: dict, *, extra_checks=None) -> dict:
    """Re-point a channel code (store, guide, source, tags, welcome, page). A guide change moves its
    WeCom contact way to the new guide (update_contact_way) before the channel is saved, so a refusal
    changes nothing; a page change drops the mp code (it encodes the page) to be made again."""
    from chalicelib.domain import tenancy as tenancy_rules
    from chalicelib.services.admin import channel_view
    brand = tenancy.require_brand(brand_id)
    current = get_channel(brand_id, scene)
    merged = {**{k: getattr(current, k) for k in ("store_id", "guide_id", "source", "tags",
                                                   "welcome_coupon_template_id", "welcome_message", "page")},
              **body, "scene": scene}
    fields = tenancy_rules.channel(merged)
    if fields["guide_id"] and not fields["store_id"]:
        raise BadRequest("a channel code naming a guide must name the guide's store too", code="missing_store_id")
    items = {item.app: item for item in code_store.codes_of_channel(brand_id, scene)}
    way = items.get("wecom")
    if way is not None and fields["guide_id"] != current.guide_id:
        new_user = guide_user(brand_id, fields["guide_id"])
        if not new_user:
            raise Conflict("this channel has a WeCom contact-me code: its new guide needs a wecom_user_id",
                           code="channel_has_no_wecom_guide")
        if way.status not in ("created", "ready"):
            raise RetryLater("the channel's WeCom code is being created; retry", code="code_being_created")
        if new_user != way.user_id:
            try:
                api_for(app_for(brand, "wecom")).call("POST", "cgi-bin/externalcontact/update_contact_way",
                                                      json_body={"config_id": way.config_id, "user": [new_user]})
            except WeChatError as err:
                raise _wechat_refusal(err, "wecom") from None
            code_store.advance(way, way.claim_id, way.status, user_id=new_user)
    channel = code_store.save_channel(brand_id, current, fields, extra_checks=extra_checks)
    mp = items.get("mp")
    if mp is not None and fields["page"] != current.page:
        code_store.delete_record(mp)
        if mp.s3_key:
            code_store.delete_png(mp.s3_key)
    return channel_view(channel)
