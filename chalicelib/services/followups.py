"""Follow-ups of a touch that may be slow or may fail at WeChat: run from the follow-up queue.

Each task runs at most once per outbox event (a marker claims it before WeChat is called; a
transient failure releases the claim so SQS's redelivery retries it). A welcome message sent twice
is worse than a welcome message retried a little later.
"""
from __future__ import annotations

from datetime import datetime, timezone

from chalicelib.observability import count, logger
from chalicelib.services import coupons
from chalicelib.services.wechat_apps import api_for, app_for
from chalicelib.storage import members, tenancy
from chalicelib.wechat.client import WeChatError

def run(name: str, detail: dict) -> None:
    task = TASKS.get(name)
    if task is None:
        raise ValueError(f"unknown follow-up task {name!r}")
    task(detail)


def welcome(detail: dict) -> None:
    brand = tenancy.require_brand(detail["brand_id"])
    coupons.welcome_coupon(brand, detail)       # exactly once per member and template (issue key)
    text = detail.get("message")
    if not text:
        return
    claim = f"task:{detail['event_id']}:welcome"
    if not members.record_inbound(brand.brand_id, claim, "welcome", datetime.now(timezone.utc)):
        return
    via = detail["via"]
    try:
        api = api_for(app_for(brand, via))
        if via == "wecom":
            api.send_welcome_msg(detail["welcome_code"], text)
        elif via == "oa":
            api.custom_send_text(detail["openid"], text)
    except WeChatError as err:
        if err.permanent:
            # e.g. the 20-second WeCom welcome code expired: retrying cannot help
            logger.warning("welcome message refused", extra={"brand_id": brand.brand_id, "errcode": err.errcode,
                                                              "member_id": detail.get("member_id")})
            return
        members.forget_inbound(brand.brand_id, claim)
        raise
    count("WelcomeMessagesSent")


TASKS = {"welcome": welcome}
