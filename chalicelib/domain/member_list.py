"""Listing a brand's members newest first, through the sharded audience index. Pure.

The audience index (gsi1, `B#<brand>#AUD#<nn>` / `<joined_at>#<member_id>`, domain.members.audience_key)
spreads a brand's members over AUDIENCE_SHARDS partitions, so "newest first" is a k-way merge: each
shard is read descending a small page at a time, and the member with the greatest sort key among the
shards' heads is taken next. A shard is read again only when its buffered head has been taken, so a
page costs about one Query per shard plus a few refills, whatever the brand's size.

The cursor is, per shard, the sort key of the last member *examined* there (taken or filtered out),
or "done". It names positions within the caller's own brand only (the brand comes from the path,
never from the cursor), so a hand-made cursor can do no more than a joined_to could; it is still
checked strictly, since its text reaches DynamoDB as an ExclusiveStartKey.

Filters other than the join range are applied to the members read, within MAX_QUERIES per page.
No index by first-touch store was added: with the ALL projection gsi1 has, it would be written on
every member update (each touch and each order's totals), not only at creation, and members already
stored would need a backfill; a store's members are a large share of a brand's (a chain has tens of
stores), so the filter skips few and pages stay close to full.
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from chalicelib import ids, untrusted
from chalicelib.domain import times
from chalicelib.domain.members import AUDIENCE_SHARDS, audience_shard
from chalicelib.errors import BadRequest

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_QUERIES = 48            # Queries per page: 16 first reads + refills; a filtered page may come back short
MAX_CURSOR_CHARS = 4096     # 16 positions of ~90 characters, base64: ~2 KB; anything longer is not ours
DONE = "done"
LISTING_PARAMS = ("store_id", "guide_id", "channel", "tag", "joined_from", "joined_to", "limit", "cursor")
# the audience index's sort key: joined_at (utc_iso, second precision) '#' member id
_SORT_KEY = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)#(.+)")
_LOWEST = "2000-01-01T00:00:00Z"         # times.EARLIEST: no member joined before it
_HIGHEST = "~"                           # sorts after every '<year>-...' key


@dataclass(frozen=True)
class Listing:
    store_id: str | None = None
    guide_id: str | None = None
    channel: str | None = None
    tag: str | None = None
    low: str = _LOWEST                   # inclusive bounds on the sort key
    high: str = _HIGHEST
    limit: int = DEFAULT_LIMIT
    cursor: dict = field(default_factory=dict)     # shard -> sort key | DONE; absent: not read yet

    def keeps(self, store_id: str | None, guide_id: str | None, scene: str | None, tags: frozenset) -> bool:
        """Whether a member (where they were first met, and their tags) passes the non-key filters."""
        return ((self.store_id is None or store_id == self.store_id)
                and (self.guide_id is None or guide_id == self.guide_id)
                and (self.channel is None or scene == self.channel)
                and (self.tag is None or self.tag in tags))


def _utc_iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bound(value: object, name: str, tz: Callable[[], str], now: datetime, *, end: bool) -> str:
    """A joined_from / joined_to as a sort-key bound. A date is a whole day in the brand's time zone
    (joined_to includes its day); a date-time without an offset is read in that zone too."""
    if not isinstance(value, str) or not value or not value.isascii():
        raise BadRequest(f"{name} must be an ISO 8601 date or date-time", code=f"invalid_{name}")
    try:
        if len(value) == 10:
            day = datetime.strptime(value, "%Y-%m-%d").date()
            start = datetime.combine(day + timedelta(days=1) if end else day, time(), ZoneInfo(tz()))
            moment = start - timedelta(seconds=1) if end else start
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=ZoneInfo(tz()))
    except (ValueError, OverflowError):
        raise BadRequest(f"{name} must be an ISO 8601 date (2025-06-01) or date-time (2025-06-01T10:00:00+08:00)",
                         code=f"invalid_{name}") from None
    problem = times.problem(moment, now)
    if problem:
        raise BadRequest(f"{name} {problem}", code=f"invalid_{name}")
    # joined_at has second precision: the inclusive upper bound takes every member of that second
    return _utc_iso(moment) + ("#~" if end else "")


def parse(query: dict, *, tz: Callable[[], str], now: datetime) -> Listing:
    """The listing a query asks for; BadRequest for any parameter it cannot be. `tz()` (the brand's
    time zone) is called only when a date or zone-less date-time needs it."""
    unknown = sorted(set(query) - set(LISTING_PARAMS))
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0]}; a listing takes " + ", ".join(LISTING_PARAMS)
                         + " (a lookup takes one of openid, unionid, external_userid)", code="unknown_parameter")
    store_id = ids.slug(query["store_id"], "store_id") if "store_id" in query else None
    guide_id = ids.slug(query["guide_id"], "guide_id") if "guide_id" in query else None
    channel = ids.scene(query["channel"], "channel") if "channel" in query else None
    tag = query.get("tag")
    if tag is not None and not (isinstance(tag, str) and 0 < len(tag) <= 40 and tag.isprintable()):
        raise BadRequest("tag must be 1-40 printable characters", code="invalid_tag")
    low = _bound(query["joined_from"], "joined_from", tz, now, end=False) if "joined_from" in query else _LOWEST
    high = _bound(query["joined_to"], "joined_to", tz, now, end=True) if "joined_to" in query else _HIGHEST
    if low > high:
        raise BadRequest("joined_from must not be after joined_to", code="invalid_joined_range")
    limit_text = query.get("limit", str(DEFAULT_LIMIT))
    if not (isinstance(limit_text, str) and limit_text.isascii() and limit_text.isdigit()
            and len(limit_text) <= 3 and 1 <= int(limit_text) <= MAX_LIMIT):
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}", code="invalid_limit")
    cursor = decode_cursor(query["cursor"]) if "cursor" in query else {}
    return Listing(store_id, guide_id, channel, tag, low, high, int(limit_text), cursor)


# ---- the cursor ------------------------------------------------------------------------------

def encode_cursor(positions: dict[int, str]) -> str | None:
    """The next page's cursor, or None when every shard is done."""
    if all(positions.get(n) == DONE for n in range(AUDIENCE_SHARDS)):
        return None
    # a shard never read yet is left out: it starts from the top of the range
    named = {f"{n:02d}": positions[n] for n in sorted(positions) if positions[n] is not None}
    text = json.dumps(named, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def valid_position(shard: int, position: object) -> bool:
    """DONE, or the sort key of a member of this shard (a minted id: never an oversized key)."""
    if position == DONE:
        return True
    match = _SORT_KEY.fullmatch(position) if isinstance(position, str) else None
    if match is None or not ids.minted(match.group(2)) or audience_shard(match.group(2)) != shard:
        return False
    try:
        datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return False
    return True


def decode_cursor(text: object) -> dict[int, str]:
    """Positions from a cursor this module encoded; 400 invalid_cursor for anything else."""
    refused = BadRequest("cursor is not the cursor of a previous page of this listing", code="invalid_cursor")
    if not isinstance(text, str) or not text or len(text) > MAX_CURSOR_CHARS or not text.isascii():
        raise refused
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise refused from None
    value = untrusted.loads(raw, what="cursor", code="invalid_cursor")
    if not isinstance(value, dict) or not value:
        raise refused
    positions = {}
    for key, position in value.items():
        if not (isinstance(key, str) and re.fullmatch(r"\d\d", key) and int(key) < AUDIENCE_SHARDS
                and valid_position(int(key), position)):
            raise refused
        positions[int(key)] = position
    return positions


# ---- the merge -------------------------------------------------------------------------------

def start_after(position: str | None, low: str, high: str) -> tuple[bool, str | None]:
    """(whether the shard has anything left in [low, high], the key to read below, or None for the top).
    A position outside the range (the filters changed between pages) is clamped, so DynamoDB never
    gets a start key outside the key condition."""
    if position == DONE or (position is not None and position < low):
        return False, None
    if position is None or position > high:
        return True, None
    return True, position


Fetch = Callable[[int, str | None, int], tuple[list[tuple[str, object]], bool]]


def merge_page(listing: Listing, fetch: Fetch, keep: Callable[[object], bool], *,
               max_queries: int = MAX_QUERIES) -> tuple[list, dict[int, str], int]:
    """A page of up to listing.limit kept items, newest first across the shards.

    `fetch(shard, start_after, n)` reads up to n (sort key, item) pairs of one shard below
    `start_after` (None: from the top of the range), descending, and says whether more may follow.
    Returns (items, the next positions, Queries made). Stops early, with positions to resume from,
    once max_queries are spent (filters skipping many members): a page may be short, never wrong."""
    per_shard = max(2, -(-2 * listing.limit // AUDIENCE_SHARDS))
    buffers: dict[int, list] = {}
    more: dict[int, bool] = {}
    positions: dict[int, str] = {}
    for shard in range(AUDIENCE_SHARDS):
        alive, _ = start_after(listing.cursor.get(shard), listing.low, listing.high)
        positions[shard] = listing.cursor.get(shard) if alive else DONE
        if alive:
            buffers[shard], more[shard] = [], True
    out: list = []
    queries = 0
    while len(out) < listing.limit:
        # every live shard needs a head before the greatest can be chosen
        starved = [s for s in buffers if not buffers[s] and more[s]]
        if queries + len(starved) > max_queries:
            break
        for shard in starved:
            _, after = start_after(positions[shard], listing.low, listing.high)
            got, more[shard] = fetch(shard, after, per_shard)
            queries += 1
            buffers[shard] = list(reversed(got))            # pop() takes the greatest
            if not got and not more[shard]:
                positions[shard] = DONE
        if any(not buffers[s] and more[s] for s in buffers):
            continue                                        # an empty page with more to come: read on
        heads = [s for s in buffers if buffers[s]]
        if not heads:
            break                                           # every shard is done
        shard = max(heads, key=lambda s: buffers[s][-1][0])
        key, item = buffers[shard].pop()
        positions[shard] = key if buffers[shard] or more[shard] else DONE
        if keep(item):
            out.append(item)
    return out, positions, queries
