"""WeChat callback ingress: verify, decrypt, parse, dedupe, act, answer — well inside WeChat's 5 s.

Order matters and is the security boundary: the signature is checked before anything else, then
the timestamp window, then decryption with the receive-id check, then the XML/JSON parse (no DTDs,
no entities: chalicelib.wechat.messages). Only then does anything touch storage, and every write
carries the message's dedupe key, so WeChat's retries (3x when it hears nothing in 5 s) change nothing
twice.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from chalicelib import ids
from chalicelib.domain.members import Shopper
from chalicelib.errors import ApiError, BadRequest
from chalicelib.observability import logger
from chalicelib.services import onboarding
from chalicelib.services.wechat_apps import App, api_for, app_for
from chalicelib.storage import members as member_store
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
            box = crypto.MessageCrypto(app.token, app.encoding_aes_key, app.app_id, also_receive=app.receive_ids)
            box.verify(query.get("msg_signature"), timestamp or "", nonce, echostr)
            crypto.check_timestamp(timestamp, now or time.time())
            try:
                return Reply(box.decrypt(echostr).decode())
            except UnicodeDecodeError:
                raise crypto.BadCiphertext("echostr does not decrypt to text") from None
        crypto.verify_signature(query.get("signature"), app.token, timestamp or "", nonce)
        crypto.check_timestamp(timestamp, now or time.time())
        return Reply(echostr)
    except crypto.CallbackError as err:
        raise _callback_error(err) from None


@dataclass(frozen=True)
class Opened:
    """A verified, decrypted, parsed callback; `box` is set when it came encrypted (so must the reply)."""
    msg: dict
    box: "crypto.MessageCrypto | None"
    nonce: str


def open_callback(app: App, query: dict, body: bytes, now: float) -> Opened:
    """Verify and read a callback: signature, then timestamp window, then decryption with the
    receive-id check, then the safe parse. Raises CallbackError (a 4xx) on the first failure."""
    messages.check_size(body)
    timestamp, nonce = query.get("timestamp"), query.get("nonce", "")
    box = None
    if app.kind == "wecom" or query.get("encrypt_type") == "aes":
        if not app.encoding_aes_key:
            raise BadRequest(f"an encrypted callback arrived but the brand's {app.kind} app has no EncodingAESKey",
                             code="encryption_not_configured")
        box = _box(app.token, app.encoding_aes_key, app.app_id, app.receive_ids)
    if app.kind != "wecom":
        crypto.verify_signature(query.get("signature"), app.token, timestamp or "", nonce)
    if box is None:
        crypto.check_timestamp(timestamp, now)
        return Opened(messages.parse_body(body), None, nonce)
    # WeCom signs only the ciphertext, which sits in the body: the outer parse must come first.
    encrypted = messages.parse_body(body).get("Encrypt")
    if not isinstance(encrypted, str) or not encrypted:
        raise BadRequest("an encrypted callback must carry Encrypt", code="missing_encrypt")
    box.verify(query.get("msg_signature"), timestamp or "", nonce, encrypted)
    crypto.check_timestamp(timestamp, now)
    plaintext, receive_id = box.open(encrypted)
    return Opened(messages.parse_body(plaintext), box.replying_as(receive_id), nonce)


@functools.lru_cache(maxsize=256)
def _box(token: str, encoding_aes_key: str, app_id: str, receive_ids: tuple[str, ...]) -> crypto.MessageCrypto:
    """An app's MessageCrypto, made once per container and credentials (a rotated token or key is a new
    entry); it holds no per-message state."""
    return crypto.MessageCrypto(token, encoding_aes_key, app_id, also_receive=receive_ids)


def receive(brand_id: str, kind: str, query: dict, body: bytes, *, now: float | None = None) -> Reply:
    """Handle one POSTed callback; returns `success` or a passive reply (encrypted when the callback was)."""
    now = now or time.time()
    brand = tenancy.require_brand(brand_id)
    app = app_for(brand, kind)
    try:
        opened = open_callback(app, query, body, now)
        msg = opened.msg
        action = route(app.kind, msg)
        if not _for_this_corp(app, msg, opened):
            # a suite serves many corps with one suite id: only the corp this brand is may act here
            logger.warning("suite callback for another corp ignored", extra={"brand_id": brand_id})
            action = IGNORE
    except crypto.CallbackError as err:
        logger.warning("callback refused", extra={"brand_id": brand_id, "app": kind, "reason": err.code})
        raise _callback_error(err) from None
    logger.append_keys(brand_id=brand.brand_id, app=app.kind, action=action.name)
    answer = execute(brand, app, action, datetime.fromtimestamp(now, timezone.utc))
    if answer is None:
        return SUCCESS
    reply_xml = messages.text_reply(action.args["openid"], _string(msg, "ToUserName"), answer, int(now))
    if opened.box is None:
        return Reply(reply_xml, "application/xml")
    return Reply(messages.encrypted_reply(opened.box, reply_xml, str(int(now)), opened.nonce), "application/xml")


def _for_this_corp(app: App, msg: dict, opened: Opened) -> bool:
    """A WeCom third-party (suite) callback names the corp that installed the suite (AuthCorpId); the
    suite id decrypts callbacks of every corp that installed it, so one for another corp is not ours."""
    if app.kind != "wecom":
        return True
    auth_corp = msg.get("AuthCorpId")
    if auth_corp in (None, ""):
        # corp-built apps' callbacks carry no AuthCorpId; one that came under the suite id must
        return opened.box is None or opened.box.receive_id != app.suite_id
    return auth_corp == app.app_id


@dataclass(frozen=True)
class Action:
    """What a callback asks of siyu, decided from the message alone (pure; unit-testable)."""
    name: str                 # touch | unsubscribe | wecom_removed | subscriptions | text | ignore
    key: str = ""             # the dedupe key every resulting write carries
    args: dict = field(default_factory=dict)


IGNORE = Action("ignore")

# Every value a callback carries into a DynamoDB key is bounded (a partition key holds 2048 bytes, a
# sort key 1024, and the emulator does not check): openids and unionids are 28 characters,
# external_userid about 32, a WeCom UserID at most 64.
MAX_ID_CHARS = ids.IDENTITY_MAX_CHARS
MAX_SCENE_CHARS = 64          # WeChat's longest scene: a QR code's scene_str
MAX_MSG_ID_CHARS = 64         # a MsgId is a 64-bit number
MAX_WELCOME_CODE_CHARS = 512  # opaque, not part of any key; only bounded
MAX_CREATE_TIME = 10 ** 10    # CreateTime is zero-padded to 10 digits in the message sort key


class InvalidMessage(crypto.CallbackError):
    status, code = 400, "invalid_message"


def _string(msg: dict, name: str) -> str:
    """A text field; "" when absent or not text. For fields that only select what to do (MsgType,
    Event, ChangeType): a message whose selector is an element with children or a JSON array is not
    one siyu acts on."""
    value = msg.get(name)
    return value if isinstance(value, str) else ""


def _identity(msg: dict, name: str, *, required: bool = True) -> str | None:
    """An identity siyu keys items by: text without whitespace or control characters, at most
    MAX_ID_CHARS. Anything else in a message siyu acts on is refused (400, nothing written)."""
    value = msg.get(name)
    if value is None or value == "":
        if required:
            raise InvalidMessage(f"{name} is required")
        return None
    if not ids.is_identity(value):
        raise InvalidMessage(f"{name} must be an id of at most {MAX_ID_CHARS} characters")
    return value


def _scene(value: str) -> str | None:
    """A scene a WeChat code could carry (at most 64 printable characters); anything else attributes nothing."""
    return value if value and len(value) <= MAX_SCENE_CHARS and value.isprintable() else None


def _optional_text(msg: dict, name: str, limit: int) -> str | None:
    value = msg.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidMessage(f"{name} must be text of at most {limit} characters")
    return value


def route(kind: str, msg: dict) -> Action:
    """Decide what a message asks. Raises InvalidMessage when a field the action needs is not a sane
    string; fields siyu does not use are never looked at."""
    msg_type = _string(msg, "MsgType").lower()
    event = _string(msg, "Event").lower() if msg_type == "event" else ""
    if kind == "wecom":
        event = event or _string(msg, "InfoType").lower()      # third-party (suite) callbacks
        if event != "change_external_contact" or not msg.get("ExternalUserID"):
            return IGNORE
        change = _string(msg, "ChangeType")
        if change in ("add_external_contact", "add_half_external_contact"):
            external_userid = _identity(msg, "ExternalUserID")
            return Action("touch", messages.dedupe_key(msg), {
                "shopper": Shopper(wecom=external_userid), "scene": _scene(_string(msg, "State")), "event": change,
                "wecom_user_id": _identity(msg, "UserID", required=False),
                "welcome_code": _optional_text(msg, "WelcomeCode", MAX_WELCOME_CODE_CHARS)})
        if change in ("del_external_contact", "del_follow_user") and msg.get("UserID"):
            return Action("wecom_removed", messages.dedupe_key(msg), {
                "external_userid": _identity(msg, "ExternalUserID"), "user_id": _identity(msg, "UserID"),
                "event": change})
        return IGNORE
    acts = event in ("subscribe", "scan", "subscribe_msg_popup_event", "subscribe_msg_change_event") \
        or (event == "unsubscribe" and kind == "oa") or msg_type == "text"
    if not acts or not msg.get("FromUserName"):
        return IGNORE
    openid = _identity(msg, "FromUserName")
    key = messages.dedupe_key(msg)
    if event in ("subscribe", "scan"):
        event_key = _string(msg, "EventKey")
        # Only a parametric QR code marks a scene: qrscene_<scene> on a follow, the bare scene on a
        # follower's SCAN. A follow's other keys (last_trade_no_<id> from the payment page,
        # scanbarcode|... from a product scan) say where the follow happened, not which code.
        if event == "subscribe":
            scene = event_key[len(QRSCENE_PREFIX):] if event_key.startswith(QRSCENE_PREFIX) else ""
        else:
            scene = event_key
        return Action("touch", key, {"shopper": Shopper(**{kind: openid}), "scene": _scene(scene), "event": event,
                                     "subscribed": True if kind == "oa" else None})
    if event == "unsubscribe":
        return Action("unsubscribe", key, {"openid": openid, "event": event})
    if event in ("subscribe_msg_popup_event", "subscribe_msg_change_event"):
        from chalicelib.domain.campaigns import MAX_TEMPLATES, subscription_changes   # campaign rules load only here
        changes = subscription_changes(msg)
        # One transaction holds the inbound marker and one item per template (DynamoDB: 100 at most);
        # WeChat's popup asks for at most a few templates at a time.
        if len(changes.accepted) + len(changes.rejected) + len(changes.revoked) > MAX_TEMPLATES:
            raise InvalidMessage(f"a subscription event may name at most {MAX_TEMPLATES} templates")
        if set(changes.accepted) & set(changes.rejected):
            raise InvalidMessage("a template cannot be both accepted and rejected")
        return Action("subscriptions", key, {"openid": openid, "changes": changes})
    content = msg.get("Content")
    if content is not None and not isinstance(content, str):
        raise InvalidMessage("Content must be text")
    msg_id = msg.get("MsgId")
    if msg_id is not None and (isinstance(msg_id, bool) or not isinstance(msg_id, (str, int))
                               or len(str(msg_id)) > MAX_MSG_ID_CHARS or not str(msg_id).isprintable()):
        raise InvalidMessage(f"MsgId must be at most {MAX_MSG_ID_CHARS} characters")
    return Action("text", key, {"openid": openid, "content": content, "msg_id": str(msg_id or key),
                                "create_time": _create_time(msg.get("CreateTime"))})


def execute(brand, app: App, action: Action, now: datetime) -> str | None:
    """Carry out a routed action; returns the text of a passive reply, if any."""
    args = action.args
    if action.name == "touch":
        shopper: Shopper = args["shopper"]
        onboarding.touch(brand.brand_id, shopper, scene=args["scene"], via=app.kind, now=now, inbound=action.key,
                         event=args["event"], subscribed=args.get("subscribed"),
                         wecom_user_id=args.get("wecom_user_id"), welcome_code=args.get("welcome_code"),
                         find_unionid=_unionid_lookup(app, shopper))
    elif action.name == "unsubscribe":
        _update_known(brand.brand_id, "oa", args["openid"], [member_store.Member.oa_subscribed.set(False)], action, now)
    elif action.name == "wecom_removed":
        from chalicelib.services import guides      # the guide's contact counters (storage.guides)
        _update_known(brand.brand_id, "wecom", args["external_userid"],
                      [member_store.Member.wecom_guides.delete({args["user_id"]})], action, now,
                      extend=guides.removal_counter(brand, args["user_id"], args["external_userid"], now))
    elif action.name == "subscriptions":
        from chalicelib.services import campaigns
        campaigns.subscribe_from_callback(brand.brand_id, args["openid"], args["changes"], inbound=action.key, now=now)
    elif action.name == "text":
        member_store.save_message(brand.brand_id, openid=args["openid"], via=app.kind, msg_type="text",
                           content=args["content"], msg_id=args["msg_id"], create_time=args["create_time"],
                           received_at=now)
        # A retried message gets the same answer again: WeChat shows whichever reply arrives in time.
        return brand.auto_reply if app.kind == "oa" else None
    return None


def _update_known(brand_id: str, ns: str, value: str, actions: list, action: Action, now: datetime,
                  extend=None) -> None:
    """Change a member we know by this identity; a shopper we never met has nothing to change.
    `extend(member_id)`: more writes for the same transaction, or None; refused (ContactUnchanged),
    the change is made without them."""
    member_id = member_store.find_member_id(brand_id, ns, value)
    if member_id:
        from chalicelib.storage.guides import ContactUnchanged
        more = extend(member_id) if extend else None
        try:
            member_store.update_member(brand_id, member_id, actions, inbound=action.key, event=action.args["event"], now=now,
                                extend=more)
        except member_store.Duplicate:
            pass
        except ContactUnchanged:
            try:
                member_store.update_member(brand_id, member_id, actions, inbound=action.key, event=action.args["event"],
                                    now=now)
            except member_store.Duplicate:
                pass


def _create_time(value) -> int:
    """CreateTime as seconds; 0 when it is not a time WeChat could send (it is part of a sort key)."""
    try:
        seconds = int(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else 0
    except (ValueError, OverflowError):      # not digits, more digits than int() reads, an infinite float
        return 0
    return seconds if 0 <= seconds < MAX_CREATE_TIME else 0


def _unionid_lookup(app: App, shopper: Shopper):
    """A callable asking WeChat for the shopper's unionid (OA user/info, WeCom externalcontact/get).
    A failure or timeout is logged and yields None: a slow WeChat API never costs the shopper their
    membership, the openid still identifies them."""
    def lookup() -> str | None:
        from chalicelib.wechat.client import WeChatError
        api = api_for(app, timeout=UNIONID_TIMEOUT)
        try:
            if app.kind == "oa" and shopper.oa:
                return api.user_info(shopper.oa).get("unionid") or None
            if app.kind == "wecom" and shopper.wecom:
                return (api.external_contact(shopper.wecom).get("external_contact") or {}).get("unionid") or None
        except WeChatError as err:
            logger.warning("unionid lookup failed", extra={"errcode": err.errcode, "errmsg": err.errmsg})
        return None
    return lookup
