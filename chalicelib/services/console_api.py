"""Reads the console needs beside the API's own: a till's day and a brand's coupon templates.

The till's day: a store's redemptions of one day (its own time zone's), newest first.

Each redemption carries gsi1 keys `B#<brand>#S#<store>#RDMDAY#<day>` / `<redeemed_at>#<redemption_id>`
(written in the redemption's own transaction: storage.coupons.redeem), so a page is one Query of one
store's day, never a scan. The cursor is the sort key of the page's last row: a hand-made one can only
move within that same store's day, so it is checked for shape and nothing more.

The templates: gsi1 `B#<brand>#TEMPLATES` / `<created_at>#<template_id>` (written with the template),
one Query a page, newest first; the live counts stay with GET .../coupon-templates/{id}.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from chalicelib.errors import BadRequest
from chalicelib.storage import coupons as coupon_store
from chalicelib.storage import tenancy
from chalicelib.storage.models import CouponTemplate, Redemption

DEFAULT_LIMIT, MAX_LIMIT = 50, 200
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CURSOR = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z#rdm_[A-Za-z0-9]{1,40}")
_PARAMS = {"day", "limit", "cursor"}


def _page(params: dict, allowed: set[str], cursor_shape: re.Pattern) -> tuple[int, str | None]:
    """(limit, cursor) of a page query, after refusing any parameter not in `allowed`."""
    extra = sorted(set(params) - allowed)
    if extra:
        raise BadRequest(f"unknown parameter(s): {', '.join(extra[:5])}", code="unknown_parameter")
    limit_text = params.get("limit", str(DEFAULT_LIMIT))
    if not limit_text.isascii() or not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
        raise BadRequest(f"limit must be 1-{MAX_LIMIT}", code="invalid_limit")
    cursor = params.get("cursor")
    if cursor is not None and not cursor_shape.fullmatch(cursor):
        raise BadRequest("cursor must be the next_cursor of a previous page", code="invalid_cursor")
    return int(limit_text), cursor


def _query(params: dict | None, today: date) -> tuple[str, int, str | None]:
    params = params or {}
    limit, cursor = _page(params, _PARAMS, _CURSOR)
    day = params.get("day", today.isoformat())
    try:
        if not _DAY.fullmatch(day):
            raise ValueError(day)
        date.fromisoformat(day)
    except ValueError:
        raise BadRequest("day must be a calendar day YYYY-MM-DD", code="invalid_day") from None
    return day, limit, cursor


def view(r: Redemption) -> dict:
    return {"redemption_id": r.redemption_id, "code": r.code, "template_id": r.template_id,
            "order_id": r.order_id, "till_id": r.till_id, "order_amount_cents": int(r.order_amount_cents),
            "discount_cents": int(r.discount_cents), "redeemed_at": r.created_at, "reversed_at": r.reversed_at}


def store_day(brand_id: str, store_id: str, params: dict | None) -> dict:
    """`{day, timezone, redemptions: [...], next_cursor}` of one store's day (default: today)."""
    brand = tenancy.require_brand(brand_id)
    today = datetime.now(timezone.utc).astimezone(ZoneInfo(brand.timezone)).date()
    day, limit, cursor = _query(params, today)
    pk = coupon_store.till_day_pk(brand_id, store_id, day)
    start = None
    if cursor:      # DynamoDB's ExclusiveStartKey for the index: the row's table key and its index key
        redemption_id = cursor.split("#", 1)[1]
        start = {"pk": {"S": f"B#{brand_id}#RDM#{redemption_id}"}, "sk": {"S": "RDM"},
                 "gsi1pk": {"S": pk}, "gsi1sk": {"S": cursor}}
    page = Redemption.gsi1.query(pk, scan_index_forward=False, limit=limit, last_evaluated_key=start)
    rows = [view(r) for r in page if isinstance(r, Redemption)]
    last = page.last_evaluated_key
    return {"day": day, "timezone": brand.timezone, "store_id": store_id, "redemptions": rows,
            "next_cursor": last["gsi1sk"]["S"] if last else None}


_TPL_CURSOR = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z#[A-Za-z0-9_-]{1,64}")


def _template_row(item: CouponTemplate) -> dict:
    return {"template_id": item.template_id, "name": item.name, "kind": item.coupon_kind, "value": int(item.value),
            "min_spend_cents": int(item.min_spend_cents or 0), "valid_from": item.valid_from,
            "valid_until": item.valid_until, "valid_days_after_claim": item.valid_days_after_claim,
            "total_stock": item.total_stock, "per_member_limit": item.per_member_limit,
            "store_ids": item.store_ids, "flash_sale": bool(item.flash_sale), "created_at": item.created_at}


def templates(brand_id: str, params: dict | None) -> dict:
    """`{templates: [...], next_cursor}`, newest first."""
    tenancy.require_brand(brand_id)
    limit, cursor = _page(params or {}, {"limit", "cursor"}, _TPL_CURSOR)
    pk = coupon_store.templates_pk(brand_id)
    start = None
    if cursor:
        start = {"pk": {"S": coupon_store.tpl_pk(brand_id, cursor.split("#", 1)[1])}, "sk": {"S": "TEMPLATE"},
                 "gsi1pk": {"S": pk}, "gsi1sk": {"S": cursor}}
    page = CouponTemplate.gsi1.query(pk, scan_index_forward=False, limit=limit, last_evaluated_key=start)
    rows = [_template_row(t) for t in page if isinstance(t, CouponTemplate)]
    last = page.last_evaluated_key
    return {"templates": rows, "next_cursor": last["gsi1sk"]["S"] if last else None}
