"""Tenancy administration: brands (platform key), and a brand's stores, guides and channel codes."""
from __future__ import annotations

import secrets as random
from datetime import datetime, timezone

from chalicelib import ids, secrets
from chalicelib.domain import member_list, tenancy as rules
from chalicelib.errors import BadRequest, NotFound
from chalicelib.observability import logger
from chalicelib.services.auth import new_key
from chalicelib.storage import members, tenancy
from chalicelib.storage.models import Channel, Guide, Store


def _now() -> datetime:
    return datetime.now(timezone.utc)


def brand_view(brand) -> dict:
    """A brand as the API shows it: public ids only; secrets never leave SSM."""
    return {"brand_id": brand.brand_id, "name": brand.name, "timezone": brand.timezone,
            "created_at": brand.created_at, "auto_reply": brand.auto_reply,
            "wechat": {k: v for k, v in (("oa_app_id", brand.oa_app_id), ("mp_app_id", brand.mp_app_id),
                                         ("wecom_corp_id", brand.wecom_corp_id),
                                         ("wecom_suite_id", brand.wecom_suite_id)) if v}}


def create_brand(body: dict) -> dict:
    """Create a brand: 201 only once both the brand (with its app-id claims) and its secrets are written.

    Secrets go last, to a parameter name the brand item already holds: a refused or failed brand
    write leaves no SecureString behind. If the secret write then fails, the brand is removed again
    (after deleting the parameter, in case the write landed and only its answer was lost), so neither a
    brand without secrets nor secrets without a brand outlive the failed request."""
    fields = rules.brand(body)
    brand_id = fields["brand_id"]
    claims = rules.app_claims(fields["public"])
    ref = secrets.new_ref(brand_id)
    admin_key = new_key("brand_admin")
    brand = tenancy.create_brand(fields, ref, admin_key, _now(), claims)
    try:
        secrets.put_brand_secrets(ref, {**fields["secret"], "session_secret": random.token_urlsafe(32)})
    except Exception:
        _undo_brand(brand_id, ref, admin_key, claims)
        raise
    from chalicelib.storage import audience      # a new brand's tag index is complete from its first member
    try:
        audience.mark_complete(brand_id, _now())
    except Exception:  # noqa: BLE001 - the brand exists; without the mark its campaigns scan (a backfill marks it)
        logger.exception("tag index not marked complete", extra={"brand_id": brand_id})
    return {**brand_view(brand), "admin_key": admin_key}


def _undo_brand(brand_id: str, ref: str, admin_key: str, claims: list) -> None:
    try:
        secrets.delete_brand_secrets(ref)
        tenancy.delete_brand(brand_id, ref, admin_key, claims)
    except Exception:  # noqa: BLE001 - the original failure is what the caller hears about
        # Kept rather than risk secrets without a brand: the brand item names the parameter to delete.
        logger.exception("brand creation failed and could not be undone", extra={"brand_id": brand_id,
                                                                                 "secret_ref": ref})


def claim_existing_apps() -> dict:
    """One-off after upgrading a deployment whose brands predate app-id claims: claim their app ids so
    a new brand cannot reuse them. Returns counts and the app ids two brands already share."""
    return tenancy.claim_apps_of_existing_brands(
        lambda brand: rules.app_claims({name: getattr(brand, name) for name in rules.APP_ID_SPACES}))


def get_brand(brand_id: str) -> dict:
    return brand_view(tenancy.require_brand(brand_id))


def create_store(brand_id: str, body: dict) -> dict:
    fields = rules.store(body)
    pos_key = new_key("store_pos")
    store = tenancy.create_store(brand_id, fields, pos_key, _now())
    return {**store_view(store), "pos_key": pos_key}


def store_view(s: Store) -> dict:
    return {"store_id": s.store_id, "name": s.name, "city": s.city, "created_at": s.created_at}


def guide_view(g: Guide) -> dict:
    return {"guide_id": g.guide_id, "store_id": g.store_id, "name": g.name, "wecom_user_id": g.wecom_user_id,
            "created_at": g.created_at}


def channel_view(c: Channel) -> dict:
    return {"scene": c.scene, "store_id": c.store_id, "guide_id": c.guide_id, "source": c.source,
            "tags": list(c.tags or []), "welcome_coupon_template_id": c.welcome_coupon_template_id,
            "welcome_message": c.welcome_message, "created_at": c.created_at,
            # what to print: the OA QR scene and the mini-program code's scene carry this value
            "oa_qr_scene": c.scene, "mp_scene": c.scene, "page": c.page}


def create_guide(brand_id: str, body: dict) -> dict:
    return guide_view(tenancy.create_guide(brand_id, rules.guide(body), _now()))


def create_channel(brand_id: str, body: dict, *, extra_checks=None) -> dict:
    fields = rules.channel(body)
    if fields["guide_id"] and not fields["store_id"]:
        raise BadRequest("a channel code naming a guide must name the guide's store too", code="missing_store_id")
    return channel_view(tenancy.create_channel(brand_id, fields, _now(), extra_checks=extra_checks))


def list_config(brand_id: str, what: str) -> list[dict]:
    model, prefix, view = {"stores": (Store, "STORE#", store_view), "guides": (Guide, "GUIDE#", guide_view),
                           "channels": (Channel, "CHANNEL#", channel_view)}[what]
    return [view(item) for item in tenancy.list_items(brand_id, model, prefix)]


LOOKUPS = {"openid": ("oa", "mp"), "unionid": ("unionid",), "external_userid": ("wecom",),
           "oa_openid": ("oa",), "mp_openid": ("mp",)}


def find_member(brand_id: str, query: dict, *, extend=None) -> dict:
    """GET /admin/{brand}/members: a lookup when an identity is given, else a page of the listing."""
    if any(name in query for name in LOOKUPS):
        return lookup_member(brand_id, query, extend=extend)
    return list_members(brand_id, query)


def list_members(brand_id: str, query: dict) -> dict:
    """Members newest first, filtered by first touch, tag and join time: `{members, cursor}`, the
    cursor null only after the last page (a filtered page may be short, or empty, and still have one)."""
    page, cursor = member_page(brand_id, query)
    return {"members": [members.member_view(m) for m in page], "cursor": cursor}


def member_page(brand_id: str, query: dict) -> tuple[list, str | None]:
    """A page of the listing `query` asks for (domain.member_list): (members, the next cursor or None).
    Shared by the admin listing and a guide's own members (services.guides fixes the guide_id)."""
    brand = tenancy.require_brand(brand_id)        # cached per container: a listing of no brand is a 404
    listing = member_list.parse(query, tz=lambda: brand.timezone, now=_now())
    page, positions, _queries = member_list.merge_page(
        listing, lambda shard, after, n: members.audience_desc(brand_id, shard, after, listing.low, listing.high, n),
        lambda m: listing.keeps(m.first_touch.store_id, m.first_touch.guide_id, m.first_touch.scene,
                                frozenset(m.tags or ())))
    return page, member_list.encode_cursor(positions)


def lookup_member(brand_id: str, query: dict, *, extend=None) -> dict:
    """The member behind one identity (?openid=, ?unionid=, ?external_userid=); 404 when none."""
    given = [(name, query[name]) for name in LOOKUPS if query.get(name)]
    if len(given) != 1:
        raise BadRequest("give exactly one of " + ", ".join(LOOKUPS), code="missing_identity")
    name, value = given[0]
    ids.identity(value, name)
    for ns in LOOKUPS[name]:
        member_id = members.find_member_id(brand_id, ns, value)
        if member_id:
            member = members.get_member(brand_id, member_id)
            if member is not None:
                view = members.member_view(member)
                view["coupons"] = extend(brand_id, member_id) if extend else []
                return view
    raise NotFound(f"no member with {name} {value}", code="unknown_member")
