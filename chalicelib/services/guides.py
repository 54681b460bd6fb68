"""The guide's workbench: WeCom login, the guide's own numbers and members, tags, and the leaderboard.

A guide signs in with a WeCom code (OAuth in WeCom's browser: auth/getuserinfo; a WeCom mini-program:
miniprogram/jscode2session) and gets a guide session: HMAC-signed like a shopper's (mp_sessions) but
with a key derived for guides, so neither kind of token is accepted as the other. The session names
the guide; every read and change is of that guide's own members (first-touch guide), checked in the
storage condition itself, so another guide's member answers exactly as a member that does not exist.
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from chalicelib import ids
from chalicelib.domain import scoreboard as score
from chalicelib.errors import ApiError, BadRequest, Forbidden, NotFound, Unauthorized
from chalicelib.observability import logger
from chalicelib.services import mp_sessions
from chalicelib.services.wechat_apps import api_for, app_for
from chalicelib.storage import guides as guide_store
from chalicelib.storage import members, tenancy
from chalicelib.wechat.client import WeChatError

PURPOSE = "guide"
SESSION_TTL = 8 * 3600           # one shift
LOGIN_PATH = "/guide/{brand_id}/login"
MAX_TAGS_PER_CHANGE = 20
LEADERBOARD_METRICS = ("new_members", "converted_members", "gmv_cents", "execution_rate")
BAD_CODE = {40029: "invalid_code", 40163: "code_used", 42003: "code_expired"}


def _now() -> datetime:
    return datetime.now(timezone.utc)


# ---- sessions ----------------------------------------------------------------------------------

def login(brand_id: str, body: dict) -> dict:
    """A WeCom code -> the guide it belongs to -> a guide session. 401 for a bad code, 403 for a WeCom
    user (or an external contact) who is not one of the brand's guides."""
    code = body.get("code")
    via = body.get("via", "oauth")
    if not isinstance(code, str) or not code.strip() or len(code) > 256:
        raise BadRequest("code (a WeCom OAuth or wx.qy.login code) is required", code="missing_code")
    if via not in ("oauth", "miniprogram"):
        raise BadRequest("via must be oauth or miniprogram", code="invalid_via")
    brand = tenancy.require_brand(brand_id)
    api = api_for(app_for(brand, "wecom"))
    try:
        if via == "oauth":
            who = api.call("GET", "cgi-bin/auth/getuserinfo", params={"code": code.strip()})
        else:
            who = api.call("GET", "cgi-bin/miniprogram/jscode2session",
                           params={"js_code": code.strip(), "grant_type": "authorization_code"})
    except WeChatError as err:
        if err.errcode in BAD_CODE:
            raise Unauthorized(f"WeCom refused the login code: {err.errmsg}", code=BAD_CODE[err.errcode]) from None
        logger.warning("WeCom login failed", extra={"brand_id": brand_id, "errcode": err.errcode})
        raise ApiError("WeCom did not answer the login; try again", code="wechat_unavailable", status=503) from None
    userid = who.get("userid") or who.get("UserId")
    if not isinstance(userid, str) or not ids.is_identity(userid):
        raise Forbidden("only the brand's own WeCom staff can sign in as guides", code="not_a_guide")
    link = guide_store.guide_by_wecom_user(brand_id, userid)
    if link is None:
        raise Forbidden(f"WeCom user {userid} is not a guide of this brand", code="not_a_guide")
    token, expires = mp_sessions.issue(brand, {"g": link.guide_id, "s": link.store_id, "w": userid},
                                       purpose=PURPOSE, ttl=SESSION_TTL)
    return {"session": token, "expires_at": expires, "guide_id": link.guide_id, "store_id": link.store_id}


def verify(brand_id: str, headers) -> dict:
    """The guide session's claims ({g: guide_id, s: store_id, w: WeCom UserID}), or 401."""
    claims = mp_sessions.verify(brand_id, headers, purpose=PURPOSE, login_path=LOGIN_PATH)
    if not isinstance(claims.get("g"), str):
        raise Unauthorized("not a guide session", code="invalid_session")
    return claims


# ---- numbers -----------------------------------------------------------------------------------

def _range(params: dict, tz: str, allowed: tuple[str, ...]) -> score.Query:
    extra = sorted(set(params) - set(allowed))
    if extra:
        raise BadRequest(f"unknown parameter(s): {', '.join(extra[:5])}", code="unknown_parameter")
    today = datetime.now(ZoneInfo(tz)).date()
    return score.query({k: params[k] for k in ("from", "to") if k in params}, today=today)


def figures_view(m: dict[str, int]) -> dict:
    assigned, executed = m.get("tasks_assigned", 0), m.get("tasks_executed", 0)
    return {"contacts": m.get("contacts", 0), "contacts_added": m.get("contacts_added", 0),
            "new_members": m.get("new_members", 0), "lost_contacts": m.get("lost_contacts", 0),
            "converted_members": m.get("converted_members", 0), "orders": m.get("orders", 0),
            "gmv_cents": m.get("gmv_cents", 0), "coupons_redeemed": m.get("coupons_redeemed", 0),
            "tasks_assigned": assigned, "tasks_executed": executed,
            "execution_rate": round(executed / assigned, 4) if assigned else None}


def me(brand_id: str, session: dict, params: dict) -> dict:
    brand = tenancy.require_brand(brand_id)
    q = _range(params, brand.timezone, ("from", "to"))
    guide = guide_store.get_guide(brand_id, session["g"])
    if guide is None:
        raise Unauthorized("this guide no longer exists", code="invalid_session")
    store_item = tenancy.get_store(brand_id, guide.store_id)
    figures = guide_store.guide_figures(brand_id, guide.guide_id, q.start, q.end)
    return {"guide": {"guide_id": guide.guide_id, "name": guide.name, "wecom_user_id": guide.wecom_user_id},
            "store": {"store_id": guide.store_id, "name": store_item.name if store_item else None,
                      "city": store_item.city if store_item else None},
            "from": q.start.isoformat(), "to": q.end.isoformat(), "timezone": brand.timezone,
            "figures": figures_view(figures)}


# ---- members -----------------------------------------------------------------------------------

def member_card(m, coupons: list[dict]) -> dict:
    view = members.member_view(m)
    return {k: view[k] for k in ("member_id", "joined_at", "external_userid", "tags", "first_touch", "last_touch",
                                 "touches", "orders", "gmv_cents", "refunded_cents", "first_order_at",
                                 "last_order_at")} | {"coupons": coupons}


def my_members(brand_id: str, session: dict, params: dict, *, wallet) -> dict:
    """The guide's members (first touch), newest first: the admin listing (domain.member_list) with the
    guide fixed from the session; only tag, limit and cursor come from the caller."""
    extra = sorted(set(params) - {"tag", "limit", "cursor"})
    if extra:
        raise BadRequest(f"unknown parameter(s): {', '.join(extra[:5])}", code="unknown_parameter")
    from chalicelib.services.admin import member_page
    page, cursor = member_page(brand_id, {**params, "guide_id": session["g"]})
    return {"members": [member_card(m, wallet(brand_id, m.member_id)) for m in page], "cursor": cursor}


def _tag_list(value, name: str) -> set[str]:
    if value is None:
        return set()
    if not isinstance(value, list) or len(value) > MAX_TAGS_PER_CHANGE:
        raise BadRequest(f"{name} must be a list of at most {MAX_TAGS_PER_CHANGE} tags", code=f"invalid_{name}")
    for tag in value:
        if not (isinstance(tag, str) and 0 < len(tag) <= 40 and tag.isprintable() and tag.strip() == tag):
            raise BadRequest("a tag is 1-40 printable characters", code="invalid_tag")
    return set(value)


def change_tags(brand_id: str, session: dict, member_id: str, body: dict) -> dict:
    """Add and remove tags of one of the guide's members; mirrored to WeCom (externalcontact/mark_tag)
    when the member is the guide's WeCom contact. 404 for a member that is not the guide's."""
    add, remove = _tag_list(body.get("add"), "add"), _tag_list(body.get("remove"), "remove")
    if not add and not remove:
        raise BadRequest("give tags to add or remove", code="missing_tags")
    if add & remove:
        raise BadRequest("a tag cannot be both added and removed", code="invalid_tags")
    if not ids.minted(member_id):
        raise NotFound(f"no member {member_id} of yours", code="unknown_member")
    brand = tenancy.require_brand(brand_id)
    member = guide_store.change_tags(brand_id, member_id, session["g"], add, remove)
    if member is None:
        raise NotFound(f"no member {member_id} of yours", code="unknown_member")
    mirrored = _mirror_tags(brand, session["w"], member, add, remove)
    return {"member_id": member_id, "tags": sorted(member.tags or ()), "wecom_mirrored": mirrored}


def _mirror_tags(brand, userid: str, member, add: set[str], remove: set[str]) -> bool | None:
    """mark_tag on WeCom for a member who is this guide's contact; None when there is nothing to mirror
    (no WeCom app, not a contact). A failure is logged, not raised: siyu's tags are the record."""
    if not brand.wecom_corp_id or not member.external_userid or userid not in (member.wecom_guides or ()):
        return None
    try:
        api = api_for(app_for(brand, "wecom"))
        ids_by_name = _corp_tags(brand.brand_id, api, sorted(add | remove))
        body = {"userid": userid, "external_userid": member.external_userid,
                "add_tag": [ids_by_name[t] for t in sorted(add)], "remove_tag": [ids_by_name[t] for t in sorted(remove)]}
        api.call("POST", "cgi-bin/externalcontact/mark_tag", json_body=body)
        return True
    except (WeChatError, NotFound) as err:
        logger.warning("WeCom tag mirror failed", extra={"brand_id": brand.brand_id, "error": str(err)})
        return False


def _corp_tags(brand_id: str, api, names: list[str]) -> dict[str, str]:
    """WeCom corp tag ids of these names: remembered ones, then WeCom's list, then made (add_corp_tag)."""
    known = guide_store.wecom_tag_ids(brand_id, names)
    missing = [n for n in names if n not in known]
    if missing:
        listed = api.call("POST", "cgi-bin/externalcontact/get_corp_tag_list", json_body={})
        for group in listed.get("tag_group") or []:
            for tag in group.get("tag") or []:
                if tag.get("name") in missing and tag.get("name") not in known:
                    known[tag["name"]] = tag["id"]
        still = [n for n in missing if n not in known]
        if still:
            made = api.call("POST", "cgi-bin/externalcontact/add_corp_tag",
                            json_body={"group_name": "siyu", "tag": [{"name": n} for n in still]})
            for tag in (made.get("tag_group") or {}).get("tag") or []:
                known[tag["name"]] = tag["id"]
        for name in missing:
            if name in known:
                guide_store.remember_wecom_tag(brand_id, name, known[name])
    return known


# ---- the contact counters of a removal -----------------------------------------------------------

def removal_counter(brand, wecom_user_id: str, external_userid: str, now: datetime):
    """For callbacks: given the member, the extend hook that moves the guide's lost_contacts and
    contacts in the removal's transaction; None when the WeCom user is not a guide."""
    link = guide_store.guide_by_wecom_user(brand.brand_id, wecom_user_id)
    if link is None:
        return None
    day = score.local_day(now, brand.timezone)
    return lambda member_id: guide_store.contact_removed(brand.brand_id, link.guide_id, external_userid, member_id, day, now)


# ---- the leaderboard -----------------------------------------------------------------------------

def leaderboard(brand_id: str, params: dict) -> dict:
    brand = tenancy.require_brand(brand_id)
    q = _range(params, brand.timezone, ("from", "to", "metric", "store_id"))
    metric = params.get("metric", "new_members")
    if metric not in LEADERBOARD_METRICS:
        raise BadRequest("metric must be one of " + ", ".join(LEADERBOARD_METRICS), code="invalid_metric")
    store_id = ids.slug(params["store_id"], "store_id") if "store_id" in params else None
    figures = guide_store.all_guides_figures(brand_id, q.start, q.end)
    from chalicelib.storage.models import Guide
    rows = []
    for guide in tenancy.list_items(brand_id, Guide, "GUIDE#"):
        if store_id is not None and guide.store_id != store_id:
            continue
        view = figures_view(figures.get(guide.guide_id, {}))
        rows.append({"guide_id": guide.guide_id, "name": guide.name, "store_id": guide.store_id,
                     "value": view[metric], **view})
    # highest first; a rate no task measured (None) after every measured one; ties by guide id
    rows.sort(key=lambda r: (r["value"] is None, -(r["value"] or 0), r["guide_id"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return {"from": q.start.isoformat(), "to": q.end.isoformat(), "timezone": brand.timezone, "metric": metric,
            "store_id": store_id, "rows": rows}


__all__ = ["login", "verify", "me", "my_members", "change_tags", "leaderboard", "removal_counter"]
