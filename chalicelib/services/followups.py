"""Follow-ups of a touch that may be slow or may fail at WeChat: run from the follow-up queue.

Each task runs at most once per outbox event (a marker claims it before WeChat is called). A
welcome message sent twice is worse than a welcome message retried a little later, or lost:

- WeChat proves it did not act (busy, 5xx, no connection): the claim is released and SQS's
  redelivery retries;
- the call may have reached WeChat with no answer (read timeout, reset: `outcome_unknown`): the
  claim is kept and the message never resent, exactly as a campaign records it;
- a configuration error (IP whitelist, secret ...): logged and counted by the client; the claim is
  released and the task fails, so it is retried by SQS and then dead-letters for a redrive once fixed;
- a permanent answer (e.g. the 20-second WeCom welcome code expired, 45047): recorded, not retried.
The same table (chalicelib.wechat.errors) decides for campaigns.
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
    via = detail["via"]
    api = api_for(app_for(brand, via))          # before the claim: failing here leaves nothing claimed
    claim = f"task:{detail['event_id']}:welcome"
    if not members.record_inbound(brand.brand_id, claim, "welcome", datetime.now(timezone.utc)):
        return
    try:
        if via == "wecom":
            api.send_welcome_msg(detail["welcome_code"], text)
        elif via == "oa":
            api.custom_send_text(detail["openid"], text)
    except WeChatError as err:
        if err.outcome_unknown:
            count("WelcomeOutcomeUnknown")
            logger.warning("welcome message outcome unknown: not resent", extra={
                "brand_id": brand.brand_id, "member_id": detail.get("member_id"), "error": err.errmsg})
            return
        if err.permanent:
            # e.g. the 20-second WeCom welcome code expired: retrying cannot help
            logger.warning("welcome message refused", extra={"brand_id": brand.brand_id, "errcode": err.errcode,
                                                              "member_id": detail.get("member_id")})
            return
        members.forget_inbound(brand.brand_id, claim)
        raise
    except Exception:
        # not from the call itself (the client reports anything after the request may have been
        # written as OutcomeUnknown): e.g. the token store failed first, so nothing was sent
        members.forget_inbound(brand.brand_id, claim)
        raise
    count("WelcomeMessagesSent")


TASKS = {"welcome": welcome}
