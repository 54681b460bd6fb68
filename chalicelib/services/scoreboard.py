"""GET /admin/{brand}/stats: the scoreboard, summed from day-keyed counters (storage.scoreboard).

One Query per read (paged at 1 MB), whatever the brand's number of members or orders: the counters
were written with the events that moved them."""
from __future__ import annotations

from chalicelib.domain import scoreboard as score
from chalicelib.storage import scoreboard as counters
from chalicelib.storage import tenancy


def stats(brand_id: str, params: dict | None) -> dict:
    q = score.query(params)
    brand = tenancy.require_brand(brand_id)
    found = counters.read(brand_id, q.by, q.start.isoformat(), q.end.isoformat())
    return score.answer(q, brand.timezone, found)
