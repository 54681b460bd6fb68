"""Printable codes (issue 11 §1): which app's code a request wants, WeChat's limits on them, and what
a printed sheet says. Pure: every refusal is unit-testable.

WeChat's limits are quota, not errors: an official account holds at most 100,000 permanent QR codes,
a WeCom corp 500,000 "contact me" and join codes together, and a mini-program may create 5,000
unlimited codes a minute. siyu counts what it created per brand and refuses past the quota (409)
rather than let WeChat refuse a printed campaign half-way.
"""
from __future__ import annotations

from chalicelib.errors import BadRequest

APPS = ("oa", "mp", "wecom")
FORMATS = ("png", "json")
# total codes per brand and app (mp: no total, a per-minute rate)
QUOTAS = {"oa": 100_000, "wecom": 500_000}
MP_PER_MINUTE = 5_000
ALARM_SHARE = 0.8                  # the metric the quota alarm watches crosses 80 (percent) here
MP_SCENE_MAX = 32                  # getwxacodeunlimit's scene: at most 32 visible characters
DEFAULT_MP_PAGE = "pages/index/index"
# A claim whose holder went silent this long (a Lambda that timed out between the claim and its
# answer) may be taken over; well above the API's 10 s timeout, so a live holder is never overtaken.
CLAIM_LEASE_SECONDS = 30.0

INSTRUCTIONS = {
    "oa": "微信扫一扫，关注公众号，成为会员领取专属福利",
    "mp": "微信扫一扫，打开小程序，成为会员领取专属福利",
    "wecom": "微信扫一扫，添加导购企业微信，享一对一专属服务",
}
APP_NAMES = {"oa": "公众号", "mp": "小程序", "wecom": "企业微信"}


def parse_request(query: dict | None) -> tuple[str, str]:
    """(app, format) of `?app=oa|mp|wecom&format=png|json`."""
    query = query or {}
    app = query.get("app")
    if app not in APPS:
        raise BadRequest("app must be one of oa, mp, wecom", code="invalid_app")
    fmt = query.get("format") or "png"
    if fmt not in FORMATS:
        raise BadRequest("format must be png or json", code="invalid_format")
    return app, fmt


def check_scene(app: str, scene: str) -> None:
    """An mp code's scene is at most 32 characters (WeChat refuses longer ones with 40129)."""
    if app == "mp" and len(scene) > MP_SCENE_MAX:
        raise BadRequest(f"a mini-program code's scene is at most {MP_SCENE_MAX} characters; "
                         f"this channel's scene has {len(scene)}: use an oa or wecom code, or a shorter scene",
                         code="scene_too_long_for_mp")


def quota(app: str) -> int | None:
    return QUOTAS.get(app)


def used_percent(app: str, used: int) -> float | None:
    limit = quota(app)
    return None if limit is None else 100.0 * used / limit


def minute(now: float) -> int:
    return int(now // 60)


def seconds_to_next_minute(now: float) -> int:
    return max(1, int(60 - now % 60) + 1)


def claim_expired(claimed_at: float, now: float) -> bool:
    return now - claimed_at >= CLAIM_LEASE_SECONDS


def object_key(brand_id: str, app: str, scene: str) -> str:
    return f"codes/{brand_id}/{app}/{scene}.png"


def sheet_lines(*, app: str, store_name: str, guide_name: str | None, scene: str, source: str) -> dict:
    """What one printed A4 page says (Chinese, for the counter)."""
    return {"title": store_name, "guide": f"导购：{guide_name}" if guide_name else "门店专属",
            "channel": f"渠道：{source}（{scene}）· {APP_NAMES[app]}", "instruction": INSTRUCTIONS[app]}
