"""WeChat callback ingress: verify, decrypt, parse, dedupe, act, answer — well inside WeChat's 5 s.

Order matters and is the security boundary: the signature is checked before anything else, then
the timestamp window, then decryption with the receive-id check, then the XML/JSON parse (defusedxml:
no DTDs, no entities). Only then does anything touch storage, and every write carries the message's
dedupe key, so WeChat's retries (3x when it hears nothing in 5 s) change nothing twice.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

from chalicelib.domain.members import Shopper
from chalicelib.errors import ApiError, BadRequest
from chalicelib.observability import logger
from chalicelib.services import onboarding
from chalicelib.services.wechat_apps import App, api_for, app_for
from chalicelib.storage import members as store
from chalicelib.storage import tenancy
from chalicelib.wechat import crypto, messages

QRSCENE_PREFIX = "qrscene_"
UNIONID_TIMEOUT = 1.5        # seconds we may spend asking WeChat for a unionid inside the 5 s budget


@dataclass(frozen=True)
class Reply:
    body: str
    content_type: str = "text/plain"
    status: int = 200


SUCCESS = Reply("success")


def _callback_error(err: crypto.CallbackError) -> ApiError:
    return ApiError(err.message, code=err.code, status=err.status)


def verify_url(brand_id: str, kind: str, query: dict, *, now: float | None = None) -> Reply:
    """WeChat's server-URL check: echo `echostr` (OA/MP) or return it decrypted (WeCom)."""
    app = app_for(tenancy.require_brand(brand_id), kind)
    try:
        timestamp, nonce, echostr = query.get("timestamp"), query.get("nonce", ""), query.get("echostr")
        if not echostr:
            raise BadRequest("echostr is required", code="missing_echostr")
        if kind == "wecom":
            box = crypto.MessageCrypto(app.token, app.encoding_aes_key, app.app_id)
            box.verify(query.get("msg_signature"), timestamp or "", nonce, echostr)
            crypto.check_timestamp(timestamp, now or time.time())
            return Reply(box.decrypt(echostr).decode())
        crypto.verify_signature(query.get("signature"), app.token, timestamp or "", nonce)
        crypto.check_timestamp(timestamp, now or time.time())
        return Reply(echostr)
    except crypto.CallbackError as err:
        raise _callback_error(err) from None


def receive(brand_id: str, kind: str, query: dict, body: bytes, *, now: float | None = None) -> Reply:
    """Handle one POSTed callback; returns `success` or a passive reply (encrypted when the callback was)."""
    now = now or time.time()
    brand = tenancy.require_brand(brand_id)
    app = app_for(brand, kind)
    try:
        messages.check_size(body)
        timestamp, nonce = query.get("timestamp"), query.get("nonce", "")
        box = None
        if kind == "wecom" or query.get("encrypt_type") == "aes":
            if not app.encoding_aes_key:
                raise BadRequest(f"an encrypted callback arrived but the brand's {kind} app has no EncodingAESKey",
                                 code="encryption_not_configured")
            box = crypto.MessageCrypto(app.token, app.encoding_aes_key, app.app_id)
        if kind != "wecom":
            crypto.verify_signature(query.get("signature"), app.token, timestamp or "", nonce)
        if box is not None:
            outer = messages.parse_body(body)
            encrypted = outer.get("Encrypt")
            if not isinstance(encrypted, str) or not encrypted:
                raise BadRequest("an encrypted callback must carry Encrypt", code="missing_encrypt")
            box.verify(query.get("msg_signature"), timestamp or "", nonce, encrypted)
            crypto.check_timestamp(timestamp, now)
            msg = messages.parse_body(box.decrypt(encrypted))
        else:
            crypto.check_timestamp(timestamp, now)
            msg = messages.parse_body(body)
    except crypto.CallbackError as err:
        logger.warning("callback refused", extra={"brand_id": brand_id, "app": kind, "reason": err.code})
        raise _callback_error(err) from None

    answer = _dispatch(brand, app, msg, datetime.fromtimestamp(now, timezone.utc))
    if answer is None:
        return SUCCESS
    reply_xml = messages.text_reply(msg.get("FromUserName", ""), msg.get("ToUserName", ""), answer, int(now))
    if box is None:
        return Reply(reply_xml, "application/xml")
    return Reply(messages.encrypted_reply(box, reply_xml, str(int(now)), nonce), "application/xml")


def _dispatch(brand, app: App, msg: dict, now: datetime) -> str | None:
    """Act on a verified message; returns the text of a passive reply, if any."""
    msg_type = str(msg.get("MsgType", "")).lower()
    event = str(msg.get("Event", "")).lower() if msg_type == "event" else ""
    key = messages.dedupe_key(msg)
    logger.append_keys(brand_id=brand.brand_id, app=app.kind, msg_type=msg_type, event=event or None)
    openid = msg.get("FromUserName") or None
    if app.kind == "wecom":
        return _wecom(brand, app, msg, event, key, now)
    if msg_type == "event" and event in ("subscribe", "scan"):
        event_key = str(msg.get("EventKey") or "")
        scene = event_key[len(QRSCENE_PREFIX):] if event_key.startswith(QRSCENE_PREFIX) else event_key
        shopper = Shopper(**{app.kind: openid})
        onboarding.touch(brand.brand_id, shopper, scene=scene or None, via=app.kind, now=now, inbound=key,
                         event=event, subscribed=True if app.kind == "oa" else None,
                         find_unionid=_unionid_lookup(app, lambda api: api.user_info(openid)))
        return None
    if msg_type == "event" and event == "unsubscribe" and app.kind == "oa":
        member_id = store.find_member_id(brand.brand_id, "oa", openid)
        if member_id:
            try:
                store.update_member(brand.brand_id, member_id, [store.Member.oa_subscribed.set(False)],
                                    inbound=key, event=event, now=now)
            except store.Duplicate:
                pass
        return None
    if msg_type == "text":
        store.save_message(brand.brand_id, openid=openid, via=app.kind, msg_type="text",
                           content=msg.get("Content"), msg_id=str(msg.get("MsgId") or key),
                           create_time=_int(msg.get("CreateTime")), received_at=now)
        # A retried message gets the same answer again: WeChat shows whichever reply arrives in time.
        return brand.auto_reply if app.kind == "oa" else None
    return None


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _wecom(brand, app: App, msg: dict, event: str, key: str, now: datetime) -> str | None:
    change = str(msg.get("ChangeType", ""))
    if event != "change_external_contact":
        return None
    external_userid = msg.get("ExternalUserID")
    user_id = msg.get("UserID")
    if not external_userid:
        return None
    if change in ("add_external_contact", "add_half_external_contact"):
        state = msg.get("State") or None
        onboarding.touch(brand.brand_id, Shopper(wecom=external_userid), scene=state, via="wecom", now=now,
                         inbound=key, event=change, wecom_user_id=user_id,
                         welcome_code=msg.get("WelcomeCode") or None,
                         find_unionid=_unionid_lookup(
                             app, lambda api: (api.external_contact(external_userid).get("external_contact") or {})))
    elif change in ("del_external_contact", "del_follow_user") and user_id:
        member_id = store.find_member_id(brand.brand_id, "wecom", external_userid)
        if member_id:
            try:
                store.update_member(brand.brand_id, member_id, [store.Member.wecom_guides.delete({user_id})],
                                    inbound=key, event=change, now=now)
            except store.Duplicate:
                pass
    return None


def _unionid_lookup(app: App, fetch):
    """A callable asking WeChat for a unionid; a failure or timeout is logged and yields None, so a
    slow WeChat API never costs the shopper their membership (the openid still identifies them)."""
    def lookup() -> str | None:
        from chalicelib.wechat.client import WeChatError
        try:
            return fetch(api_for(app, timeout=UNIONID_TIMEOUT)).get("unionid") or None
        except WeChatError as err:
            logger.warning("unionid lookup failed", extra={"errcode": err.errcode, "errmsg": err.errmsg})
            return None
    return lookup
