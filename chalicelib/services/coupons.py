"""Coupons: templates, claims (incl. flash sales), the wallet, member codes and the till.

AWS cost: a claim is one read (who is the member) and one TransactWriteItems; a redemption one
BatchGetItem (coupon + unknown-code guard + idempotency record) and one TransactWriteItems.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from chalicelib import secrets
from chalicelib.cache import TTLCache
from chalicelib.domain import coupons as rules
from chalicelib.domain import scoreboard as score
from chalicelib.domain.members import choose_member, session_member
from chalicelib.errors import ApiError, BadRequest, Conflict, NotFound, TooManyRequests
from chalicelib.ids import new_id
from chalicelib.observability import count, logger
from chalicelib.services import onboarding
from chalicelib.storage import coupons as coupon_store
from chalicelib.storage import members, tenancy
from chalicelib.storage import scoreboard as counters
from chalicelib.storage.models import Brand, Store

DEFAULT_RETENTION_DAYS = 400
UNKNOWN_CODE_LIMIT = 20                 # unknown codes one store may submit per guard window
REVERSAL_WINDOW_DAYS = 30
_templates = TTLCache(ttl_seconds=30)
# Which stock shards this container knows to be empty (stock only goes down, so it stays true), and
# when it last read every shard's count; see _issue.
_empty_shards: dict[tuple[str, str], set[int]] = {}
_shards_read_at: dict[tuple[str, str], float] = {}
_empty_lock = threading.Lock()
MAX_SHARD_TRIES = 4                     # stock writes one claim may make before answering out_of_stock
SHARD_READ_INTERVAL = 1.0               # seconds between one container's reads of every shard's count


def _now() -> datetime:
    return datetime.now(timezone.utc)


def retention(brand: Brand) -> int:
    return int(brand.coupon_retention_days or DEFAULT_RETENTION_DAYS)


# ---- templates -----------------------------------------------------------------------------

def template_view(item, counts: dict) -> dict:
    return {"template_id": item.template_id, "name": item.name, "kind": item.coupon_kind, "value": int(item.value),
            "min_spend_cents": int(item.min_spend_cents), "valid_from": item.valid_from,
            "valid_until": item.valid_until,
            "valid_days_after_claim": int(item.valid_days_after_claim) if item.valid_days_after_claim else None,
            "total_stock": int(item.total_stock) if item.total_stock is not None else None,
            "per_member_limit": int(item.per_member_limit), "store_ids": item.store_ids,
            "claim_starts_at": item.claim_starts_at, "claim_ends_at": item.claim_ends_at,
            "flash_sale": bool(item.flash_sale), "stock_shards": int(item.shards),
            "reversal_voids": bool(item.reversal_voids), "created_at": item.created_at, **counts}


def create_template(brand_id: str, body: dict) -> dict:
    tenancy.require_brand(brand_id)
    template = rules.template(body, new_id("tpl", 12), now=_now())
    if template.store_ids:
        known = {s.store_id for s in Store.batch_get([(tenancy.brand_pk(brand_id), f"STORE#{s}")
                                                      for s in template.store_ids])}
        missing = sorted(set(template.store_ids) - known)
        if missing:
            raise NotFound(f"unknown store(s): {', '.join(missing)}", code="unknown_store")
    item = coupon_store.create_template(brand_id, template, _now())
    remaining = template.total_stock
    return template_view(item, {"issued": 0, "redeemed": 0, "reversed": 0, "remaining": remaining,
                                "discount_cents": 0})


def get_template(brand_id: str, template_id: str) -> dict:
    found = coupon_store.template_with_counts(brand_id, template_id)
    if found is None:
        raise NotFound(f"no coupon template {template_id}", code="unknown_coupon_template")
    return template_view(*found)


def template_exists_check(brand_id: str, template_id: str):
    """A condition for a channel code's transaction: its welcome coupon template exists."""
    return coupon_store.template_exists_check(brand_id, template_id)


def cached_template(brand_id: str, template_id: str) -> rules.Template:
    template = _templates.get_or_load((brand_id, template_id), lambda: coupon_store.get_template(brand_id, template_id))
    if template is None:
        raise NotFound(f"no coupon template {template_id}", code="unknown_coupon_template")
    return template


# ---- issuing -------------------------------------------------------------------------------

def coupon_view(brand_id: str, c) -> dict:
    return {"code": c.code, "template_id": c.template_id, "name": c.name, "kind": c.coupon_kind,
            "value": int(c.value), "min_spend_cents": int(c.min_spend_cents), "store_ids": c.store_ids,
            "valid_from": c.valid_from, "valid_until": c.valid_until, "state": c.state, "source": c.source,
            "qr": rules.qr_payload(brand_id, c.code)}


def template_stats(brand_id: str, template_id: str, params: dict | None) -> dict:
    """GET /admin/{brand}/coupon-templates/{id}/stats?by=store|day[&from&to]: issued, redeemed (net of
    reversals), redemption_rate, discount_cents and order_gmv_cents per row (default: the last 31 days)."""
    from chalicelib.services import scoreboard
    cached_template(brand_id, template_id)
    return scoreboard.template_stats(tenancy.require_brand(brand_id), template_id, params)


def _first_touch(member) -> dict:
    touch = member.first_touch if member is not None else None
    return ({"store_id": touch.store_id, "guide_id": touch.guide_id, "scene": touch.scene}
            if touch is not None else {})


def _keys(touch: dict) -> score.Keys:
    return score.Keys(touch.get("store_id"), touch.get("guide_id"), touch.get("scene"))


def _coupon_keys(brand_id: str, coupon) -> score.Keys:
    """The member's first touch as kept on the coupon; read from the member when the coupon has none
    (a flash-sale coupon, one issued before the scoreboard, or a member with no first-touch keys)."""
    keys = score.Keys(coupon.touch_store_id, coupon.touch_guide_id, coupon.touch_scene)
    if keys == score.Keys(None, None, None):
        keys = _keys(_first_touch(members.get_member(brand_id, coupon.member_id)))
    return keys


def _redemption_counters(brand_id: str, tz: str, coupon, *, store_id: str, discount_cents: int, now: datetime,
                         redemption_id: str, sign: int):
    """Redeemed (sign 1) or reversed (-1) on `now`'s day: at the redeeming store, by the member's first
    touch for guide and channel (kept on the coupon when it was issued)."""
    deltas = score.coupon_redeemed(day=score.local_day(now, tz), store_id=store_id,
                                   member=_coupon_keys(brand_id, coupon), discount_cents=discount_cents, sign=sign, template_id=coupon.template_id)
    return counters.extender(brand_id, deltas, counters.shard_of(redemption_id))


def _issue(brand: Brand, template: rules.Template, member_id: str, *, source: str, issue_key: str | None,
           now: datetime):
    """Issue from one stock shard, picked at random among those this container believes non-empty.

    The transaction touches that one shard, so no item takes more than its share of the claims.
    A refusal (the shard is empty) is remembered and, at most once a second per template, makes the
    container read every shard's count (eventually consistent, N/100 BatchGetItems) to learn all the
    shards that emptied meanwhile: late claims go where stock is left instead of each container
    paying one refused write per empty shard. At most MAX_SHARD_TRIES shards are tried, so a claim
    near the end of a sale answers out_of_stock in bounded time; OutOfStock otherwise only when every
    shard is known empty, ShardBusy when the last try met a concurrent transaction on its shard
    (in AWS, a hot shard's transactions conflict; another shard is tried, but never forever). Never
    oversold: each shard's write is conditional on its own quota."""
    key = (brand.brand_id, template.template_id)
    tries, busy = 0, False
    by_code = rules.limited_by_code(template)
    # the member's first touch keys the scoreboard's coupons_issued (one GetItem); a flash-sale claim
    # counts in the by=day row only, so it reads nothing more (its redemption reads the member instead)
    touch = {} if template.flash_sale else _first_touch(members.get_member(brand.brand_id, member_id))
    day = score.local_day(now, brand.timezone)
    deltas = score.coupon_issued(day=day, member=_keys(touch), template_id=template.template_id)
    if template.flash_sale:
        # A flash-sale claim is a ~5-item transaction sized for 100,000+ claims/s (domain.coupons): it
        # adds only the `day` row's counter, on its stock shard's counter item (so no item takes more
        # writes than a stock shard), not the store/guide/channel rows' nor the template's own rows
        # (5 more items in every claim).
        deltas = [d for d in deltas if d[0] == "day"]

    while True:
        with _empty_lock:
            empty = _empty_shards.setdefault(key, set())
            candidates = [n for n in range(template.shards) if n not in empty]
        if not candidates or tries >= MAX_SHARD_TRIES:
            raise coupon_store.ShardBusy() if busy and candidates else coupon_store.OutOfStock()
        shard = random.choice(candidates)
        tries += 1
        try:
            # a limit of 1 is carried by the coupon's code (rules.limited_by_code): the member's code
            # of the template, the same whichever path issues it; otherwise a fresh random code
            code = (rules.limit_code(limit_key(brand), template.template_id, member_id) if by_code
                    else rules.new_code())
            # a flash sale's claims spread over its stock shards, and so do its scoreboard counters
            # (each item then takes no more writes than a stock shard); others by a hash of the code
            shard_n = shard if template.flash_sale else counters.shard_of(code)
            return coupon_store.issue(brand.brand_id, template, member_id=member_id, shard=shard, code=code,
                               now=now, source=source, retention_days=retention(brand), issue_key=issue_key,
                               touch=touch, extend=counters.extender(brand.brand_id, deltas, shard_n,
                                                                     flash=bool(template.flash_sale)),
                               limit_by_code=by_code)
        except coupon_store.OutOfStock:
            busy = False
            with _empty_lock:
                empty.add(shard)
            _learn_empty_shards(brand.brand_id, template, empty)
        except coupon_store.ShardBusy:
            busy = True
        except coupon_store.CodeTaken:
            continue


def _learn_empty_shards(brand_id: str, template: rules.Template, empty: set[int]) -> None:
    if template.shards == 1 or template.total_stock is None:
        return
    key = (brand_id, template.template_id)
    with _empty_lock:
        if time.monotonic() - _shards_read_at.get(key, float("-inf")) < SHARD_READ_INTERVAL:
            return
        _shards_read_at[key] = time.monotonic()
    issued = coupon_store.shard_issued(brand_id, template.template_id, template.shards)
    full = {n for n, count in issued.items() if count >= rules.shard_quota(template.total_stock, template.shards, n)}
    with _empty_lock:
        empty.update(full)


def _member_of(brand_id: str, session: dict) -> str:
    named = session_member(session)
    if named is not None:
        return named
    identities = [("mp", session["o"])] + ([("unionid", session["u"])] if session.get("u") else [])
    ctx = members.load_touch_context(brand_id, scene=None, identities=identities)
    member_id = choose_member(ctx.found)
    if member_id is None:
        raise Conflict("join first: scan a store's code in the mini-program", code="not_a_member")
    return member_id


def claim(brand_id: str, session: dict, template_id: str) -> dict:
    brand = tenancy.require_brand(brand_id)
    template = cached_template(brand_id, template_id)
    now = _now()
    refusal = rules.claim_refusal(template, now)
    if refusal:
        raise Conflict("this coupon cannot be claimed now", code=refusal)
    # A shopper who never scanned a code (search, a share, the OA menu) joins by claiming.
    member_id = onboarding.join_from_mini_program(brand_id, session, now=now)
    try:
        coupon = _issue(brand, template, member_id, source="claim", issue_key=None, now=now)
    except coupon_store.OutOfStock:
        count("ClaimsOutOfStock")
        raise Conflict("all gone", code="out_of_stock") from None
    except coupon_store.ShardBusy:
        count("ClaimsBusy")
        raise TooManyRequests("this sale is busy: try again in a moment", code="claims_busy") from None
    except coupon_store.LimitReached:
        raise Conflict(f"at most {template.per_member_limit} per member", code="limit_reached") from None
    count("CouponsIssued")
    return {"coupon": coupon_view(brand_id, coupon)}


def issue_coupon(brand: Brand, member_id: str, template_id: str, *, issue_key: str, source: str,
                 now: datetime | None = None) -> str | None:
    """Issue a coupon the brand gives (welcome, campaign) exactly once per `issue_key`; returns its
    code, or None when the template has no stock left or the member has reached its limit."""
    template = cached_template(brand.brand_id, template_id)
    try:
        return _issue(brand, template, member_id, source=source, issue_key=issue_key, now=now or _now()).code
    except coupon_store.AlreadyIssued:
        return coupon_store.issued_for_key(brand.brand_id, issue_key)
    except (coupon_store.OutOfStock, coupon_store.LimitReached) as refusal:
        logger.warning("coupon not issued", extra={"brand_id": brand.brand_id, "member_id": member_id,
                                                   "template_id": template_id, "reason": type(refusal).__name__})
        return None


def welcome_coupon(brand: Brand, detail: dict) -> None:
    """The welcome flow's coupon step (see services.followups.WELCOME_STEPS)."""
    template_id = detail.get("coupon_template_id")
    if template_id:
        issue_coupon(brand, detail["member_id"], template_id, issue_key=f"welcome:{detail['member_id']}:{template_id}",
                     source="welcome")


def wallet(brand_id: str, member_id: str) -> list[dict]:
    return [coupon_view(brand_id, c) for c in coupon_store.wallet(brand_id, member_id, _now())]


def my_wallet(brand_id: str, session: dict) -> dict:
    return {"coupons": wallet(brand_id, _member_of(brand_id, session))}


# ---- member code and the till --------------------------------------------------------------

def _code_secret(brand: Brand) -> bytes:
    return secrets.brand_secrets(brand.secret_ref)["session_secret"].encode()


def limit_key(brand: Brand) -> bytes:
    """The brand's key for limit codes (rules.limit_code): an HMAC purpose of its own under the brand's secret."""
    return hmac.new(_code_secret(brand), b"siyu per-member coupon code", hashlib.sha256).digest()


def my_member_code(brand_id: str, session: dict, now: float | None = None) -> dict:
    brand = tenancy.require_brand(brand_id)
    now = time.time() if now is None else now
    code, expires = rules.member_code(_code_secret(brand), _member_of(brand_id, session), now)
    return {"member_code": code, "expires_at": datetime.fromtimestamp(expires, timezone.utc).isoformat()}


def member_code_owner(brand: Brand, code: object) -> str | None:
    """The member whose rotating code (/me/member-code) the till scanned, while it is valid; else None."""
    return rules.read_member_code(_code_secret(brand), code, time.time())


def _amount(body: dict) -> int:
    amount = body.get("order_amount_cents")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= 100_000_000:
        raise BadRequest("order_amount_cents must be a whole number of cents", code="invalid_order_amount_cents")
    return amount


def member_lookup(brand_id: str, store_id: str, body: dict) -> dict:
    brand = tenancy.require_brand(brand_id)
    amount = _amount(body)
    member_id = member_code_owner(brand, body.get("member_code"))
    if member_id is None:
        raise NotFound("member code unknown or expired: ask the shopper to refresh it", code="invalid_member_code")
    member = members.get_member(brand_id, member_id)
    if member is None:
        raise NotFound("member code unknown or expired", code="invalid_member_code")
    now = _now()
    usable = []
    for c in coupon_store.wallet(brand_id, member_id, now):
        state = _state(c)
        if rules.redemption_refusal(state, store_id=store_id, order_amount_cents=amount, now=now) is None:
            usable.append({**coupon_view(brand_id, c),
                           "discount_cents": rules.discount(c.coupon_kind, int(c.value), amount)})
    view = members.member_view(member)
    return {"member": {k: view[k] for k in ("member_id", "joined_at", "tags", "first_touch", "last_touch")},
            "coupons": usable}


def _state(c) -> rules.CouponState:
    return rules.CouponState(state=c.state, valid_from=coupon_store.parse(c.valid_from), valid_until=coupon_store.parse(c.valid_until),
                             store_ids=tuple(c.store_ids) if c.store_ids is not None else None,
                             min_spend_cents=int(c.min_spend_cents))


def _refuse(code: str) -> ApiError:
    return ApiError(rules.REFUSAL_MESSAGE[code], code=code, status=rules.REFUSAL_STATUS[code])


def _request_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _replay(record, request_hash: str) -> tuple[int, dict]:
    if record.request_hash != request_hash:
        raise Conflict("this Idempotency-Key was used for a different request", code="idempotency_key_reused")
    return int(record.status), json.loads(record.response)


def redeem(brand_id: str, store_id: str, body: dict, idem_key: str | None, *,
           now: datetime | None = None) -> tuple[int, dict]:
    """Redeem once per Idempotency-Key: a retry gets the first answer again, byte for byte. `now`: the
    till's moment (the demo's month of history, siyu_dev.history); the API always redeems at the present."""
    if not idem_key or len(idem_key) > 128 or not idem_key.isprintable():
        raise BadRequest("send an Idempotency-Key header (order id or request number), 1-128 characters",
                         code="missing_idempotency_key")
    brand = tenancy.require_brand(brand_id)
    amount = _amount(body)
    order_id = body.get("order_id")
    if not isinstance(order_id, str) or not 0 < len(order_id) <= 128:
        raise BadRequest("order_id is required", code="invalid_order_id")
    till_id = body.get("till_id")
    if till_id is not None and (not isinstance(till_id, str) or len(till_id) > 64):
        raise BadRequest("till_id must be a short string", code="invalid_till_id")
    request_hash = _request_hash({"code": body.get("code"), "order_id": order_id, "order_amount_cents": amount,
                                  "till_id": till_id})
    code = rules.normalize_code(body.get("code"))
    now_ts = now.timestamp() if now is not None else time.time()
    coupon, guard, record = coupon_store.till_read(brand_id, store_id, code, idem_key, now_ts)
    if record is not None:
        return _replay(record, request_hash)
    if guard is not None and int(guard.misses or 0) >= UNKNOWN_CODE_LIMIT:
        logger.warning("unknown-code guard tripped", extra={"brand_id": brand_id, "store_id": store_id})
        raise TooManyRequests("too many unknown coupon codes from this store; wait a few minutes",
                              code="too_many_unknown_codes")
    if coupon is None:
        misses = coupon_store.count_unknown_code(brand_id, store_id, now_ts)
        logger.info("unknown coupon code at the till", extra={"brand_id": brand_id, "store_id": store_id,
                                                               "misses": misses})
        raise _refuse("unknown_code")
    now = datetime.fromtimestamp(now_ts, timezone.utc)
    refusal = rules.redemption_refusal(_state(coupon), store_id=store_id, order_amount_cents=amount, now=now)
    if refusal:
        raise _refuse(refusal)
    discount = rules.discount(coupon.coupon_kind, int(coupon.value), amount)
    redemption_id = new_id("rdm", 16)
    coupon.state, coupon.redemption_id = "redeemed", redemption_id
    answer = {"redemption_id": redemption_id, "discount_cents": discount, "coupon": coupon_view(brand_id, coupon),
              "order_id": order_id, "store_id": store_id}
    try:
        coupon_store.redeem(brand_id, coupon, store_id=store_id, till_id=till_id, order_id=order_id,
                     order_amount_cents=amount, discount_cents=discount, redemption_id=redemption_id,
                     idem_key=idem_key, request_hash=request_hash, response=answer, now=now,
                     retention_days=retention(brand), local_day=till_day(brand, now),
                     extend=_redemption_counters(brand_id, brand.timezone, coupon, store_id=store_id,
                                                 discount_cents=discount, now=now, redemption_id=redemption_id,
                                                 sign=1))
    except coupon_store.KeyUsed:
        return _replay(coupon_store.idempotency_record(brand_id, store_id, idem_key), request_hash)
    except coupon_store.NotRedeemable:
        current = coupon_store.get_coupon(brand_id, coupon.code)
        raise _refuse(rules.redemption_refusal(_state(current), store_id=store_id, order_amount_cents=amount,
                                               now=now) or "already_redeemed") from None
    count("CouponsRedeemed")
    return 201, answer


def till_day(brand: Brand, now: datetime) -> str:
    """The store's day of `now` (the brand's time zone): what the till lists as today's."""
    return now.astimezone(ZoneInfo(brand.timezone)).date().isoformat()


def reverse(brand_id: str, store_id: str, redemption_id: str) -> dict:
    """Undo a redemption (a refund); reversing twice is a no-op."""
    redemption = coupon_store.get_redemption(brand_id, redemption_id)
    if redemption is None or redemption.store_id != store_id:
        raise NotFound(f"no redemption {redemption_id} at store {store_id}", code="unknown_redemption")
    coupon = coupon_store.get_coupon(brand_id, redemption.code)
    if redemption.reversed_at is None:
        redeemed_at = coupon_store.parse(redemption.created_at)
        if (_now() - redeemed_at).days >= REVERSAL_WINDOW_DAYS:
            raise Conflict(f"redemptions can be reversed within {REVERSAL_WINDOW_DAYS} days",
                           code="reversal_window_closed")
        template = cached_template(brand_id, redemption.template_id)
        now = _now()
        try:
            coupon_store.reverse(brand_id, redemption, member_id=coupon.member_id, void=template.reversal_voids, now=now,
                          extend=_redemption_counters(brand_id, tenancy.require_brand(brand_id).timezone, coupon,
                                                      store_id=redemption.store_id,
                                                      discount_cents=int(redemption.discount_cents), now=now,
                                                      redemption_id=redemption_id, sign=-1))
        except coupon_store.AlreadyReversed:
            pass
        redemption = coupon_store.get_redemption(brand_id, redemption_id)
        coupon = coupon_store.get_coupon(brand_id, redemption.code)
    return {"redemption_id": redemption_id, "reversed_at": redemption.reversed_at,
            "coupon": coupon_view(brand_id, coupon)}
