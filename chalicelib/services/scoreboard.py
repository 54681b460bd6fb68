"""GET /admin/{brand}/stats: the scoreboard, summed from day-keyed counters (storage.scoreboard).

One Query per read (paged at 1 MB), whatever the brand's number of members or orders: the counters
were written with the events that moved them."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from chalicelib.domain import scoreboard as score
from chalicelib.storage import scoreboard as counters
from chalicelib.storage import tenancy


def stats(brand_id: str, params: dict | None) -> dict:
    q = score.query(params)
    brand = tenancy.require_brand(brand_id)
    found = counters.read(brand_id, q.by, q.start.isoformat(), q.end.isoformat())
    return score.answer(q, brand.timezone, found)


def template_stats(brand, template_id: str, params: dict | None) -> dict:
    """One coupon template's rows by day or store: one Query of its own counters."""
    today = datetime.now(ZoneInfo(brand.timezone)).date()
    q = score.query(params, dimensions=("day", "store"), today=today)
    by_day, by_store = score.template_dimensions(template_id)
    found = counters.read(brand.brand_id, by_day if q.by == "day" else by_store, q.start.isoformat(),
                          q.end.isoformat())
    return {"template_id": template_id, **score.answer(q, brand.timezone, found, template=True)}
