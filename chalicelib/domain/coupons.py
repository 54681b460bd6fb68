"""Coupon rules: templates, codes, validity, discounts, redemption refusals, flash-sale sharding.

Pure: plain data in and out; clocks and randomness are passed in.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

from chalicelib import ids
from chalicelib.domain import times
from chalicelib.domain.tenancy import text
from chalicelib.errors import BadRequest

KINDS = ("cash_off", "percent_off", "gift")
# Staff read codes aloud and type them: no 0/O, no 1/I.
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
RANDOM_CHARS = 13                       # 13 x 5 bits = 65 random bits
CODE_LENGTH = RANDOM_CHARS + 1          # + one check character
MAX_WRITES_PER_ITEM = 800               # DynamoDB allows ~1,000 writes/s per item; keep 20% headroom
DEFAULT_FLASH_RATE = 10_000             # claims/s a flash sale is sized for unless the template says
# The fastest flash sale siyu accepts: twice the 100,000 claims/s the bench models (bench/coupons.py),
# 250 stock shards. Past it more shards lift nothing: each claim is a ~5-item transaction (~10 WCU,
# transactional writes count twice), so 200,000 claims/s is already ~2 million WCU/s, 50x DynamoDB's
# default per-table on-demand quota (40,000/s; a sale this size needs that quota raised by request
# first). Rather than promise a rate no one has modelled, a faster sale is refused: split it into
# templates (by store or time slot) or put a queue in front of the claim.
MAX_FLASH_RATE = 200_000
MEMBER_CODE_STEP = 60                   # seconds a member code is shown before it rotates


# ---- codes ---------------------------------------------------------------------------------

def check_char(body: str) -> str:
    """Luhn mod 32 over ALPHABET: catches every single mistyped character and every adjacent
    transposition except of the pair '2'/'Z' (values 0 and 31), before any database read."""
    n = len(ALPHABET)
    total, factor = 0, 2
    for ch in reversed(body):
        addend = factor * ALPHABET.index(ch)
        total += addend // n + addend % n
        factor = 1 if factor == 2 else 2
    return ALPHABET[(n - total % n) % n]


def new_code(randbelow=secrets.randbelow) -> str:
    body = "".join(ALPHABET[randbelow(len(ALPHABET))] for _ in range(RANDOM_CHARS))
    return body + check_char(body)


def derived_code(key: bytes, *parts: str) -> str:
    """A code the brand gives once per `parts` (a campaign coupon: campaign, run, member): keyed
    HMAC-SHA256, the first 65 bits in ALPHABET plus the check character, so it reads and checks like
    new_code's. The same parts always give the same code: a retried issue writes the same coupon,
    and a conditional put makes it idempotent without an issue-key item. Unguessable without `key`."""
    digest = hmac.new(key, "|".join(parts).encode(), hashlib.sha256).digest()
    bits = int.from_bytes(digest[:9], "big")
    body = "".join(ALPHABET[(bits >> (5 * i)) & 31] for i in range(RANDOM_CHARS))
    return body + check_char(body)


def limited_by_code(t: "Template") -> bool:
    """A template whose per-member limit is its coupon's code: with a limit of 1, every issue path
    (a claim, a welcome, a campaign) writes the member's coupon under limit_code(template, member),
    so one conditional put on that code is the limit for all of them at once (two racing issuers
    put the same key: one wins), and no per-member counter item is written. Templates never change
    after creation (there is no update), so a template stays on one side of this for its life."""
    return t.per_member_limit == 1


def kept_until(t: "Template", valid_until: datetime, retention_days: int) -> datetime | None:
    """When the table's TTL may delete a coupon of `t` that expires at `valid_until`: `retention_days`
    after, unless the coupon is its member's limit (limited_by_code) and the template can issue
    again after that (its validity runs from each issue, and campaigns and welcomes are not held
    to the claim window): then the coupon is the limit for as long as the template lives, like the
    claims counter it replaces, and is kept (None: no TTL). With a fixed validity nothing is issued
    usefully after the coupon's own expiry, so it goes with the usual retention."""
    if limited_by_code(t) and t.valid_days_after_claim is not None:
        return None
    return valid_until + timedelta(days=retention_days)


def limit_code(key: bytes, template_id: str, member_id: str) -> str:
    """The code of the member's one coupon of a template limited by code (`key`: the brand's key for
    these codes, a purpose of its own, so they never meet a campaign run's derived codes)."""
    return derived_code(key, template_id, member_id)


def normalize_code(raw: object) -> str | None:
    """The code as stored, or None when it cannot be one (wrong length, alphabet or check character).
    Tolerates what a person types: lower case, spaces, dashes."""
    if not isinstance(raw, str):
        return None
    code = raw.replace(" ", "").replace("-", "").upper()
    if len(code) != CODE_LENGTH or any(ch not in ALPHABET for ch in code):
        return None
    return code if check_char(code[:-1]) == code[-1] else None


def qr_payload(brand_id: str, code: str) -> str:
    """What the wallet renders as a QR code for the till's scanner."""
    return f"siyu:coupon:{brand_id}:{code}"


# ---- templates -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Template:
    template_id: str
    name: str
    kind: str
    value: int
    min_spend_cents: int
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days_after_claim: int | None
    total_stock: int | None
    per_member_limit: int
    store_ids: tuple[str, ...] | None
    claim_starts_at: datetime | None
    claim_ends_at: datetime | None
    flash_sale: bool
    shards: int
    reversal_voids: bool = False
    # whether the member's claims counter may hold claims of this template: those counted before a
    # limit of 1 was carried by the coupon's code (limited_by_code). A template created since never
    # had one written (there is no counter to read before issuing). The one gap: older code still
    # running while this deploys, issuing a template this code has just created (it counts, the
    # campaign path no longer reads the count); a deploy lasts minutes, a template's life much longer
    claims_counted: bool = True


def _int(body: dict, field: str, *, low: int, high: int, default=None, required=False) -> int | None:
    value = body.get(field, default)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{field} must be a whole number from {low} to {high}", code="invalid_" + field)
    return value


def parse_time(value: object, field: str, now: datetime | None = None) -> datetime | None:
    """An ISO 8601 time with a zone, in UTC, inside times.window(now); BadRequest otherwise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be an ISO 8601 time with a zone, e.g. 2026-11-11T00:00:00+08:00",
                         code="invalid_" + field)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{field} is not an ISO 8601 time: {value!r}", code="invalid_" + field) from None
    if parsed.tzinfo is None:
        raise BadRequest(f"{field} needs a time zone offset (e.g. +08:00)", code="invalid_" + field)
    problem = times.problem(parsed, now)
    if problem:
        raise BadRequest(f"{field} {problem}", code="invalid_" + field)
    return times.to_utc(parsed)


def shard_count(total_stock: int | None, flash_sale: bool, claims_per_second: int | None) -> int:
    """Stock items a template's claims spread over: enough that at the expected claim rate no item
    takes more than MAX_WRITES_PER_ITEM writes/s, never more shards than coupons."""
    if not flash_sale:
        return 1
    wanted = math.ceil((claims_per_second or DEFAULT_FLASH_RATE) / MAX_WRITES_PER_ITEM)
    return max(1, min(wanted, total_stock or wanted))


def split_stock(total_stock: int, shards: int) -> list[int]:
    return [shard_quota(total_stock, shards, n) for n in range(shards)]


def shard_quota(total_stock: int, shards: int, shard: int) -> int:
    """How many coupons shard `shard` may issue: the stock split as evenly as possible. A shard's
    claims are conditional on its issued count staying at most this, so the sum never exceeds the
    stock however the claims are spread."""
    base, extra = divmod(total_stock, shards)
    return base + (1 if shard < extra else 0)


def template(body: dict, template_id: str, *, now: datetime | None = None) -> Template:
    """Validate a template definition; every refusal is a BadRequest naming the field. `now` (the
    service always gives it) bounds every time to times.window and refuses a valid_until in the past."""
    kind = body.get("kind")
    if kind not in KINDS:
        raise BadRequest(f"kind must be one of {', '.join(KINDS)}", code="invalid_kind")
    if kind == "cash_off":
        value = _int(body, "value", low=1, high=10_000_000, required=True)
    elif kind == "percent_off":
        value = _int(body, "value", low=1, high=99, required=True)
    else:
        value = _int(body, "value", low=0, high=10_000_000, default=0)
    valid_from = parse_time(body.get("valid_from"), "valid_from", now)
    valid_until = parse_time(body.get("valid_until"), "valid_until", now)
    days = _int(body, "valid_days_after_claim", low=1, high=3650)
    if days is not None and (valid_from or valid_until):
        raise BadRequest("give valid_from/valid_until or valid_days_after_claim, not both", code="invalid_validity")
    if days is None and not valid_until:
        raise BadRequest("give valid_until (and optionally valid_from) or valid_days_after_claim",
                         code="invalid_validity")
    if valid_until and now is not None and valid_until <= now:
        raise BadRequest("valid_until is in the past: no one could use the coupon", code="invalid_valid_until")
    if valid_from and valid_until and valid_from >= valid_until:
        raise BadRequest("valid_from must be before valid_until", code="invalid_validity")
    claim_starts = parse_time(body.get("claim_starts_at"), "claim_starts_at", now)
    claim_ends = parse_time(body.get("claim_ends_at"), "claim_ends_at", now)
    if claim_starts and claim_ends and claim_starts >= claim_ends:
        raise BadRequest("claim_starts_at must be before claim_ends_at", code="invalid_claim_window")
    stock = _int(body, "total_stock", low=1, high=100_000_000)
    flash = body.get("flash_sale", False)
    if not isinstance(flash, bool):
        raise BadRequest("flash_sale must be true or false", code="invalid_flash_sale")
    if flash and stock is None:
        raise BadRequest("a flash sale needs a total_stock", code="invalid_total_stock")
    rate = body.get("expected_claims_per_second")
    if isinstance(rate, int) and not isinstance(rate, bool) and rate > MAX_FLASH_RATE:
        raise BadRequest(f"expected_claims_per_second above {MAX_FLASH_RATE:,} cannot be served: each claim is a"
                         " transaction, and at that rate the table's write quota, not the stock shards, is the"
                         " limit; split the sale (by store or time slot) into templates of at most"
                         f" {MAX_FLASH_RATE:,}/s", code="flash_sale_too_fast")
    rate = _int(body, "expected_claims_per_second", low=1, high=MAX_FLASH_RATE)
    store_ids = body.get("store_ids")
    if store_ids is not None:
        if not isinstance(store_ids, list) or not store_ids or len(store_ids) > 500:
            raise BadRequest("store_ids must be null (every store) or a list of 1-500 store ids",
                             code="invalid_store_ids")
        store_ids = tuple(sorted({ids.slug(s, "store_id") for s in store_ids}))
    voids = body.get("reversal_voids", False)
    if not isinstance(voids, bool):
        raise BadRequest("reversal_voids must be true or false", code="invalid_reversal_voids")
    return Template(
        template_id=template_id, name=text(body.get("name"), "name"), kind=kind, value=value,
        min_spend_cents=_int(body, "min_spend_cents", low=0, high=100_000_000, default=0),
        valid_from=valid_from, valid_until=valid_until, valid_days_after_claim=days, total_stock=stock,
        per_member_limit=_int(body, "per_member_limit", low=1, high=1000, default=1),
        store_ids=store_ids, claim_starts_at=claim_starts, claim_ends_at=claim_ends, flash_sale=flash,
        shards=shard_count(stock, flash, rate), reversal_voids=voids, claims_counted=False)


# ---- claiming, validity ---------------------------------------------------------------------

def claim_refusal(t: Template, now: datetime) -> str | None:
    if (t.claim_starts_at and now < t.claim_starts_at) or (t.claim_ends_at and now >= t.claim_ends_at):
        return "claim_window_closed"
    if t.valid_until and now >= t.valid_until:
        return "claim_window_closed"
    return None


def validity(t: Template, claimed_at: datetime) -> tuple[datetime, datetime]:
    """When a coupon claimed at `claimed_at` may be used: the template's fixed window, or from the
    claim for `valid_days_after_claim` days."""
    if t.valid_days_after_claim is not None:
        return claimed_at, claimed_at + timedelta(days=t.valid_days_after_claim)
    return t.valid_from or claimed_at, t.valid_until


# ---- the till -----------------------------------------------------------------------------

def discount(kind: str, value: int, order_amount_cents: int) -> int:
    """Cents taken off: cash-off capped at the order; percent-off rounded half up to the cent."""
    if kind == "cash_off":
        return min(value, order_amount_cents)
    if kind == "percent_off":
        cents = (Decimal(order_amount_cents) * Decimal(value) / Decimal(100)).quantize(Decimal(1), ROUND_HALF_UP)
        return int(cents)
    return 0


@dataclass(frozen=True)
class CouponState:
    state: str                        # issued | redeemed | void
    valid_from: datetime
    valid_until: datetime
    store_ids: tuple[str, ...] | None
    min_spend_cents: int
    reversed_before: bool = False


def redemption_refusal(c: CouponState, *, store_id: str, order_amount_cents: int, now: datetime) -> str | None:
    """Why this coupon cannot be redeemed here and now, in a fixed precedence; None if it can."""
    if c.state == "void":
        return "reversed"
    if c.state == "redeemed":
        return "already_redeemed"
    if now < c.valid_from:
        return "not_yet_valid"
    if now >= c.valid_until:
        return "expired"
    if c.store_ids is not None and store_id not in c.store_ids:
        return "wrong_store"
    if order_amount_cents < c.min_spend_cents:
        return "min_spend_not_met"
    return None


REFUSAL_STATUS = {"unknown_code": 404, "already_redeemed": 409, "reversed": 409, "expired": 422,
                  "not_yet_valid": 422, "wrong_store": 422, "min_spend_not_met": 422}
REFUSAL_MESSAGE = {
    "unknown_code": "no such coupon code", "already_redeemed": "this coupon has already been redeemed",
    "reversed": "this coupon was voided when its redemption was reversed", "expired": "this coupon has expired",
    "not_yet_valid": "this coupon is not valid yet", "wrong_store": "this coupon cannot be used in this store",
    "min_spend_not_met": "the order does not reach the coupon's minimum spend"}


# ---- member codes -------------------------------------------------------------------------

def _member_mac(secret: bytes, member_id: str, step: int) -> str:
    digest = hmac.new(secret, f"{member_id}|{step}".encode(), hashlib.sha256).digest()
    return "".join(ALPHABET[b % 32] for b in digest[:10])


def member_code(secret: bytes, member_id: str, now: float) -> tuple[str, int]:
    """A code for the till that names the member, and the instant the till stops accepting it.

    The code names the current step; read_member_code accepts it during that step and the next one
    (a code shown just before a rotation still works at the till), so it expires when the step after
    next begins: one to two minutes after it is shown, never the mere rotation of the display."""
    step = int(now // MEMBER_CODE_STEP)
    return f"{member_id}.{step}.{_member_mac(secret, member_id, step)}", (step + 2) * MEMBER_CODE_STEP


def read_member_code(secret: bytes, code: object, now: float) -> str | None:
    """The member id in a member code still valid at `now` (current or previous step), else None."""
    if not isinstance(code, str) or code.count(".") != 2:
        return None
    member_id, step_text, mac = code.split(".")
    if not (step_text.isascii() and step_text.isdigit()):      # '²'.isdigit(), but int('²') raises
        return None
    step = int(step_text)
    if int(now // MEMBER_CODE_STEP) - step not in (0, 1):
        return None
    return member_id if hmac.compare_digest(mac, _member_mac(secret, member_id, step)) else None
