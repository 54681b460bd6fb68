"""Validation of what brand and store admins send: pure, so every 4xx reason is unit-testable."""
from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chalicelib import ids
from chalicelib.errors import BadRequest

# Applied with fullmatch: `^...$` also accepted a trailing "\n" (an AES key ending in a newline made
# a brand whose every safe-mode callback failed).
_TOKEN = re.compile(r"[A-Za-z0-9]{3,32}")            # WeChat's rule for the server-config Token
_AES_KEY = re.compile(r"[A-Za-z0-9]{43}")            # EncodingAESKey: 43 chars of base64 without '='
_APP_ID = re.compile(r"[A-Za-z0-9_-]{4,64}")
_WECOM_USER_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


def _obj(value: object, field: str) -> dict:
    if not isinstance(value, dict):
        raise BadRequest(f"{field} must be a JSON object", code="invalid_" + field.replace(".", "_"))
    return value


def text(value: object, field: str, *, max_len: int = 100, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise BadRequest(f"{field} must be a non-empty string of at most {max_len} characters",
                         code="invalid_" + field.replace(".", "_"))
    return value.strip()


def timezone(value: object) -> str:
    if not isinstance(value, str):
        raise BadRequest("timezone must be an IANA time zone name such as Asia/Shanghai", code="invalid_timezone")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"unknown time zone {value!r}; use an IANA name such as Asia/Shanghai",
                         code="invalid_timezone") from None
    return value


def _match(pattern: re.Pattern, value: object, field: str, rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadRequest(f"{field} must be {rule}", code="invalid_" + field.replace(".", "_"))
    return value


def wechat_config(value: object) -> tuple[dict, dict]:
    """Split the brand's WeChat configuration into (public ids, secrets). At least one app is required."""
    cfg = _obj(value if value is not None else {}, "wechat")
    unknown = set(cfg) - {"oa", "mp", "wecom"}
    if unknown:
        raise BadRequest(f"unknown wechat section(s): {', '.join(sorted(unknown))}", code="invalid_wechat")
    if not cfg:
        raise BadRequest("wechat needs at least one of oa, mp, wecom", code="invalid_wechat")
    public: dict[str, str] = {}
    secret: dict[str, dict] = {}
    for app in ("oa", "mp"):
        if app in cfg:
            section = _obj(cfg[app], f"wechat.{app}")
            public[f"{app}_app_id"] = _match(_APP_ID, section.get("app_id"), f"wechat.{app}.app_id", "an app id")
            secret[app] = {
                "app_secret": text(section.get("app_secret"), f"wechat.{app}.app_secret", max_len=128),
                "token": _match(_TOKEN, section.get("token"), f"wechat.{app}.token", "3-32 letters or digits"),
                "encoding_aes_key": (None if section.get("encoding_aes_key") in (None, "") else _match(
                    _AES_KEY, section.get("encoding_aes_key"), f"wechat.{app}.encoding_aes_key",
                    "43 letters or digits")),
            }
    if "wecom" in cfg:
        section = _obj(cfg["wecom"], "wechat.wecom")
        public["wecom_corp_id"] = _match(_APP_ID, section.get("corp_id"), "wechat.wecom.corp_id", "a corp id")
        if section.get("suite_id") is not None:
            # A third-party (suite) app encrypts its callbacks for the suite id; API calls still use the corp id.
            public["wecom_suite_id"] = _match(_APP_ID, section["suite_id"], "wechat.wecom.suite_id", "a suite id")
        secret["wecom"] = {
            "secret": text(section.get("secret"), "wechat.wecom.secret", max_len=128),
            "token": _match(_TOKEN, section.get("token"), "wechat.wecom.token", "3-32 letters or digits"),
            # WeCom callbacks are always encrypted, so the key is mandatory here.
            "encoding_aes_key": _match(_AES_KEY, section.get("encoding_aes_key"), "wechat.wecom.encoding_aes_key",
                                       "43 letters or digits"),
        }
    if public.get("oa_app_id") and public.get("oa_app_id") == public.get("mp_app_id"):
        raise BadRequest("the official account and the mini-program are two WeChat apps with two app ids",
                         code="invalid_wechat")
    return public, secret


# An app id names one app everywhere WeChat uses it, so it is claimed per id space: OA and
# mini-program app ids are both WeChat appids (one space: an OA's appid given as another brand's
# mini-program is the same app), WeCom corp ids and suite ids are spaces of their own. The brand body
# carries no WeCom agent id (siyu uses the corp's customer-contact secret), so the corp id is the key.
APP_ID_SPACES = {"oa_app_id": ("wx", "wechat.oa.app_id"), "mp_app_id": ("wx", "wechat.mp.app_id"),
                 "wecom_corp_id": ("wecom", "wechat.wecom.corp_id"),
                 "wecom_suite_id": ("suite", "wechat.wecom.suite_id")}


def app_claims(public: dict) -> list[tuple[str, str, str]]:
    """(id space, app id, body field) for each app the brand's public ids name: what it must own alone."""
    return [(space, public[name], field) for name, (space, field) in APP_ID_SPACES.items() if public.get(name)]


def _retention(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3650:
        raise BadRequest("coupon_retention_days must be 1-3650 (days kept after a coupon expires)",
                         code="invalid_coupon_retention_days")
    return value


def brand(body: dict) -> dict:
    public, secret = wechat_config(body.get("wechat"))
    return {
        "brand_id": ids.slug(body.get("brand_id"), "brand_id"),
        "name": text(body.get("name"), "name"),
        "timezone": timezone(body.get("timezone", "Asia/Shanghai")),
        "auto_reply": text(body.get("auto_reply"), "auto_reply", max_len=600, required=False),
        "coupon_retention_days": _retention(body.get("coupon_retention_days")),
        "public": public,
        "secret": secret,
    }


def store(body: dict) -> dict:
    return {"store_id": ids.slug(body.get("store_id"), "store_id"), "name": text(body.get("name"), "name"),
            "city": text(body.get("city"), "city", max_len=60, required=False)}


def guide(body: dict) -> dict:
    wecom_user_id = body.get("wecom_user_id")
    if wecom_user_id is not None:
        wecom_user_id = _match(_WECOM_USER_ID, wecom_user_id, "wecom_user_id",
                               "a WeCom UserID (1-64 letters, digits, _ . @ -)")
    return {"guide_id": ids.slug(body.get("guide_id"), "guide_id"), "store_id": ids.slug(body.get("store_id"),
            "store_id"), "name": text(body.get("name"), "name"), "wecom_user_id": wecom_user_id}


def channel(body: dict) -> dict:
    tags = body.get("tags") or []
    if not isinstance(tags, list) or len(tags) > 20 or not all(
            isinstance(t, str) and 0 < len(t) <= 40 for t in tags):
        raise BadRequest("tags must be a list of at most 20 strings of 1-40 characters", code="invalid_tags")
    store_id = body.get("store_id")
    guide_id = body.get("guide_id")
    template = body.get("welcome_coupon_template_id")
    return {
        "scene": ids.scene(body.get("scene")),
        "store_id": ids.slug(store_id, "store_id") if store_id is not None else None,
        "guide_id": ids.slug(guide_id, "guide_id") if guide_id is not None else None,
        "source": text(body.get("source", "qrcode"), "source", max_len=60),
        "tags": sorted(set(tags)),
        "welcome_coupon_template_id": text(template, "welcome_coupon_template_id", max_len=64, required=False),
        "welcome_message": text(body.get("welcome_message"), "welcome_message", max_len=600, required=False),
        "page": text(body.get("page"), "page", max_len=128, required=False),
    }
