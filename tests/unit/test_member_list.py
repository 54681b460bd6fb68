"""The member listing's cursor and its k-way merge over the audience shards, on plain data."""
import base64
import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.domain import member_list as ml
from chalicelib.domain.members import AUDIENCE_SHARDS, audience_key, audience_shard
from chalicelib.errors import BadRequest

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


class FakeIndex:
    """The audience index of one brand as DynamoDB answers a descending Query with Limit: up to n
    keys below the start key within [low, high], and a LastEvaluatedKey whenever Limit was reached."""

    def __init__(self, members: list[tuple[str, dict]]):
        self.shards: dict[int, list] = {n: [] for n in range(AUDIENCE_SHARDS)}
        for member_id, fields in members:
            _, sk = audience_key("b", member_id, fields["joined_at"])
            self.shards[audience_shard(member_id)].append((sk, {"member_id": member_id, **fields}))
        self.queries = 0

    def fetch(self, listing):
        def fetch(shard, after, n):
            self.queries += 1
            rows = sorted((r for r in self.shards[shard] if listing.low <= r[0] <= listing.high
                           and (after is None or r[0] < after)), key=lambda r: r[0], reverse=True)
            return rows[:n], len(rows) >= n
        return fetch


def members(count: int, seed: int = 7) -> list[tuple[str, dict]]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        joined = NOW - timedelta(days=rng.randrange(60), seconds=rng.randrange(5))     # many share a second
        out.append((f"m_{i:04d}x{rng.randrange(10**6):06d}", {
            "joined_at": joined.strftime("%Y-%m-%dT%H:%M:%SZ"), "store_id": rng.choice(["sz", "sh", None]),
            "tags": frozenset(rng.sample(["vip", "poster", "sh"], rng.randrange(3)))}))
    return out


def page_through(index: FakeIndex, query: dict, keep=lambda m: True, tz="Asia/Shanghai"):
    seen, pages, cursor = [], 0, None
    while True:
        q = dict(query, **({"cursor": cursor} if cursor else {}))
        listing = ml.parse(q, tz=lambda: tz, now=NOW)
        before = index.queries
        page, positions, made = ml.merge_page(listing, index.fetch(listing), keep)
        assert made == index.queries - before <= ml.MAX_QUERIES
        assert len(page) <= listing.limit
        seen.extend(page)
        pages += 1
        cursor = ml.encode_cursor(positions)
        if cursor is None:
            return seen, pages
        assert pages < 1000


def newest_first(rows: list[tuple[str, dict]]) -> list[str]:
    return [m for m, f in sorted(rows, key=lambda r: (r[1]["joined_at"], r[0]), reverse=True)]


@pytest.mark.parametrize("limit", [1, 3, 20, 100])
def test_paging_returns_every_member_once_newest_first_across_shards(limit):
    rows = members(257)
    seen, pages = page_through(FakeIndex(rows), {"limit": str(limit)})
    assert [m["member_id"] for m in seen] == newest_first(rows)
    assert pages >= -(-257 // limit)


def test_a_filter_that_skips_most_members_still_finds_every_match_in_bounded_pages():
    rows = members(600, seed=3)
    keep = lambda m: m["store_id"] == "sz" and "vip" in m["tags"]      # noqa: E731
    index = FakeIndex(rows)
    seen, pages = page_through(index, {"limit": "5"}, keep)
    wanted = [m for m in newest_first(rows) if keep(dict(rows)[m])]
    assert [m["member_id"] for m in seen] == wanted and len(wanted) > 5


def test_a_rare_match_gives_short_pages_with_a_cursor_rather_than_unbounded_work():
    rows = members(3000, seed=5)
    rare = newest_first(rows)[-1]                                    # the oldest member only
    index = FakeIndex(rows)
    listing = ml.parse({"limit": "10"}, tz=lambda: "UTC", now=NOW)
    page, positions, made = ml.merge_page(listing, index.fetch(listing), lambda m: m["member_id"] == rare)
    assert page == [] and made <= ml.MAX_QUERIES and ml.encode_cursor(positions) is not None
    seen, _ = page_through(FakeIndex(rows), {"limit": "10"}, lambda m: m["member_id"] == rare)
    assert [m["member_id"] for m in seen] == [rare]


def test_joined_range_is_a_key_condition_in_the_brands_time_zone():
    rows = members(300, seed=11)
    query = {"joined_from": "2026-11-01", "joined_to": "2026-11-15", "limit": "7"}
    index = FakeIndex(rows)
    seen, _ = page_through(index, query)
    # dates are whole days in Asia/Shanghai: 2026-11-01T00:00+08:00 .. 2026-11-15T23:59:59+08:00
    lo, hi = "2026-10-31T16:00:00Z", "2026-11-15T15:59:59Z"
    assert [m["member_id"] for m in seen] == [m for m in newest_first(rows) if lo <= dict(rows)[m]["joined_at"] <= hi]
    assert seen and all(lo <= m["joined_at"] <= hi for m in seen)


def test_a_cursor_outside_a_changed_range_is_clamped_not_sent_to_dynamodb():
    listing = ml.Listing(low="2026-11-01T00:00:00Z", high="2026-11-10T00:00:00Z#~")
    assert ml.start_after("2026-12-01T00:00:00Z#m_1", listing.low, listing.high) == (True, None)
    assert ml.start_after("2026-10-01T00:00:00Z#m_1", listing.low, listing.high) == (False, None)
    assert ml.start_after("2026-11-05T00:00:00Z#m_1", listing.low, listing.high) == (True, "2026-11-05T00:00:00Z#m_1")
    assert ml.start_after(ml.DONE, listing.low, listing.high) == (False, None)


def test_the_last_page_has_a_null_cursor_and_an_empty_index_one_page():
    listing = ml.parse({}, tz=lambda: "UTC", now=NOW)
    index = FakeIndex([])
    page, positions, made = ml.merge_page(listing, index.fetch(listing), lambda m: True)
    assert page == [] and ml.encode_cursor(positions) is None and made == AUDIENCE_SHARDS


def _b64(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def _member_of_shard(shard: int) -> str:
    return next(f"m_{i}" for i in range(1000) if audience_shard(f"m_{i}") == shard)


def test_cursor_round_trips():
    positions = {n: ml.DONE for n in range(AUDIENCE_SHARDS)}
    positions[3] = f"2026-11-01T10:00:00Z#{_member_of_shard(3)}"
    assert ml.decode_cursor(ml.encode_cursor(positions)) == positions


@pytest.mark.parametrize("cursor", [
    _b64({"03": f"2026-11-01T10:00:00Z#{_member_of_shard(4)}"}),          # a member of another shard
    _b64({"16": ml.DONE}),                                                # no such shard
    _b64({"3": ml.DONE}),                                                 # not the encoder's key
    _b64({"03": "2026-13-01T10:00:00Z#" + _member_of_shard(3)}),          # no such month
    _b64({"03": "2026-11-01T10:00:00Z#m x"}),                            # not a minted id
    _b64({"03": "2026-11-01T10:00:00Z#" + "a" * 2000}),                  # an oversized key
    _b64({"03": {"S": "x"}}),                                             # a DynamoDB value
    _b64({}), _b64([]), _b64("done"), _b64(None),
    _b64({"03": [[[[[[]]]]]]}),
    base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode(),         # nested past any decoder
    "A" * (ml.MAX_CURSOR_CHARS + 1),                                     # oversized
    "not base64!", "", "\u0663\u0663",
])
def test_a_forged_cursor_is_invalid_cursor(cursor):
    with pytest.raises(BadRequest) as err:
        ml.parse({"cursor": cursor}, tz=lambda: "UTC", now=NOW)
    assert err.value.code == "invalid_cursor"


@pytest.mark.parametrize("query, code", [
    ({"limit": "0"}, "invalid_limit"), ({"limit": "101"}, "invalid_limit"), ({"limit": "\u0662"}, "invalid_limit"),
    ({"limit": " 5"}, "invalid_limit"), ({"limit": "5.0"}, "invalid_limit"),
    ({"limit": "0" * 50 + "5"}, "invalid_limit"),
    ({"joined_from": "2026-02-30"}, "invalid_joined_from"), ({"joined_from": "1999-12-31"}, "invalid_joined_from"),
    ({"joined_to": "9999-12-31T23:59:59-12:00"}, "invalid_joined_to"),
    ({"joined_to": "yesterday"}, "invalid_joined_to"),
    ({"joined_from": "2026-11-20", "joined_to": "2026-11-10"}, "invalid_joined_range"),
    ({"store_id": "SZ#1"}, "invalid_store_id"), ({"guide_id": "x" * 41}, "invalid_guide_id"),
    ({"channel": "S 1"}, "invalid_channel"), ({"tag": ""}, "invalid_tag"), ({"tag": "t" * 41}, "invalid_tag"),
    ({"store": "sz"}, "unknown_parameter"),
])
def test_every_bad_parameter_is_a_named_400(query, code):
    with pytest.raises(BadRequest) as err:
        ml.parse(query, tz=lambda: "Asia/Shanghai", now=NOW)
    assert err.value.code == code


def test_the_brand_time_zone_is_read_only_when_a_date_needs_it():
    def no_tz():
        raise AssertionError("time zone read for a query without dates")
    listing = ml.parse({"store_id": "sz", "joined_from": "2026-11-01T00:00:00Z", "limit": "3"}, tz=no_tz, now=NOW)
    assert (listing.low, listing.high, listing.limit) == ("2026-11-01T00:00:00Z", "~", 3)
    assert listing.keeps("sz", None, None, frozenset()) and not listing.keeps("sh", None, None, frozenset())
