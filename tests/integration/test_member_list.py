"""GET /admin/{brand}/members without an identity: the brand's members newest first, a page at a time
through the sharded audience index, filtered by first touch, tag and join time."""
from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.domain import member_list
from chalicelib.domain.members import AUDIENCE_SHARDS, Shopper, audience_shard
from tests.integration.conftest import dynamodb_calls


@pytest.fixture(scope="module")
def listed(stack, api):
    """A brand with members who joined through two stores, two guides, three channels and none, on
    different days (in-process through the onboarding service, so their join times can be set), two
    joined just now through a real OA callback, one re-touched through another channel, one with an order."""
    from chalicelib.services import onboarding
    from tests.integration.conftest import new_brand
    brand = new_brand(stack, api, "ml")
    assert brand.admin("POST", "/guides", {"guide_id": "g2", "store_id": "sh", "name": "Wang",
                                           "wecom_user_id": "wang"}).status_code == 201
    assert brand.admin("POST", "/channels", {"scene": "S3", "store_id": "sh", "guide_id": "g2", "source": "event",
                                             "tags": ["vip"]}).status_code == 201
    scenes = ["S1", "S2", "S3", None]
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=20)
    joined = {}                                   # member id -> (joined_at, first scene)
    for i in range(14):
        at = start + timedelta(hours=29 * i)
        result = onboarding.touch(brand.brand_id, Shopper(oa=f"o-ml-{i}"), scene=scenes[i % 4], via="oa", now=at,
                                  subscribed=True)
        assert result.created
        joined[result.member_id] = (onboarding.iso(at), scenes[i % 4])
    for i in (100, 101):
        assert brand.subscribe(f"o-ml-{i}", "S2").status_code == 200
        m = brand.member(openid=f"o-ml-{i}")
        joined[m["member_id"]] = (m["joined_at"], "S2")
    # a member who joined through S2 (store sh) and later scanned S1 (store sz): listed by FIRST touch
    retouched = brand.member(openid="o-ml-1")["member_id"]
    onboarding.touch(brand.brand_id, Shopper(oa="o-ml-1"), scene="S1", via="oa",
                     now=datetime.now(timezone.utc), subscribed=True)
    r = api.call("POST", f"/pos/{brand.brand_id}/stores/sz/orders", brand.pos_keys["sz"],
                 {"order_id": "ml-o1", "amount_cents": 1234, "member_id": retouched},
                 headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    brand.joined, brand.retouched = joined, retouched
    return brand


def newest_first(joined: dict, keep=lambda mid, scene: True) -> list[str]:
    return [mid for mid, (at, scene) in sorted(joined.items(), key=lambda kv: (kv[1][0], kv[0]), reverse=True)
            if keep(mid, scene)]


def page_all(brand, **query) -> tuple[list[dict], int]:
    out, cursor, pages = [], None, 0
    while True:
        r = brand.admin("GET", "/members", params={**query, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"members", "cursor"}
        assert len(body["members"]) <= int(query.get("limit", 20))
        out.extend(body["members"])
        pages += 1
        cursor = body["cursor"]
        if cursor is None:
            return out, pages
        assert pages < 50


def test_pages_of_three_list_every_member_once_newest_first(listed):
    seen, pages = page_all(listed, limit="3")
    ids = [m["member_id"] for m in seen]
    assert ids == newest_first(listed.joined) and len(ids) == 16 == len(set(ids))
    assert pages >= 6
    one = next(m for m in seen if m["member_id"] == listed.retouched)
    assert one["first_touch"]["scene"] == "S2" and one["last_touch"]["scene"] == "S1"
    assert one["tags"] == ["poster", "sh", "sz"] and one["orders"] == 1 and one["gmv_cents"] == 1234


def test_default_page_is_twenty_with_a_null_cursor_at_the_end(listed):
    r = listed.admin("GET", "/members")
    assert r.status_code == 200 and r.json()["cursor"] is None
    assert [m["member_id"] for m in r.json()["members"]] == newest_first(listed.joined)


FIRST = {"S1": ("sz", "g1", {"poster", "sz"}), "S2": ("sh", None, {"sh"}), "S3": ("sh", "g2", {"vip"}),
         None: (None, None, set())}


@pytest.mark.parametrize("query, keep", [
    ({"store_id": "sz"}, lambda mid, scene: FIRST[scene][0] == "sz"),
    ({"store_id": "sh"}, lambda mid, scene: FIRST[scene][0] == "sh"),
    ({"guide_id": "g2"}, lambda mid, scene: FIRST[scene][1] == "g2"),
    ({"channel": "S2"}, lambda mid, scene: scene == "S2"),
    ({"channel": "S2", "store_id": "sh"}, lambda mid, scene: scene == "S2"),
    ({"store_id": "nowhere"}, lambda mid, scene: False),
])
def test_each_first_touch_filter(listed, query, keep):
    seen, _ = page_all(listed, limit="2", **query)
    assert [m["member_id"] for m in seen] == newest_first(listed.joined, keep)


def test_tag_filter_sees_tags_from_every_touch(listed):
    seen, _ = page_all(listed, limit="4", tag="sz")
    # S1 joiners, and the S2 member who scanned S1 later
    assert [m["member_id"] for m in seen] == newest_first(
        listed.joined, lambda mid, scene: scene == "S1" or mid == listed.retouched)


def test_joined_range_by_instant_and_by_date(listed):
    times = sorted(at for at, _ in listed.joined.values())
    lo, hi = times[3], times[8]                          # inclusive at both ends
    seen, _ = page_all(listed, limit="3", joined_from=lo, joined_to=hi)
    assert [m["member_id"] for m in seen] == [
        mid for mid in newest_first(listed.joined) if lo <= listed.joined[mid][0] <= hi]
    assert len(seen) == 6
    shanghai = timezone(timedelta(hours=8))                      # the brand's time zone
    today = datetime.now(shanghai).date()
    since = onboarding_iso(datetime.combine(today, datetime.min.time(), shanghai))
    seen, _ = page_all(listed, joined_from=today.isoformat())
    assert [m["member_id"] for m in seen] == [
        mid for mid in newest_first(listed.joined) if listed.joined[mid][0] >= since]
    assert 2 <= len(seen) < 16


def test_another_brands_admin_key_is_403(listed, make_brand):
    other = make_brand("mlx")
    r = listed.api.call("GET", f"/admin/{listed.brand_id}/members", other.admin_key)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_listing_a_brand_that_does_not_exist_is_a_404(stack, api):
    r = api.call("GET", "/admin/no-such-brand-here/members", stack.platform_key)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_brand", r.text


def onboarding_iso(moment: datetime) -> str:
    from chalicelib.services import onboarding
    return onboarding.iso(moment)


def _b64(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize("cursor", [
    _b64({"00": "2026-11-01T00:00:00Z#" + next(f"m_{i}" for i in range(99) if audience_shard(f"m_{i}") != 0)}),
    _b64({"00": {"S": "B#other-brand#M#m_1"}}),
    _b64({"99": "done"}),
    "A" * 5000,
    base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).decode(),
    "%%%",
])
def test_a_forged_oversized_or_nested_cursor_is_400(listed, cursor):
    r = listed.admin("GET", "/members", params={"cursor": cursor})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_cursor" and r.json()["error"]["message"]


@pytest.mark.parametrize("query, code", [
    ({"limit": "0"}, "invalid_limit"), ({"limit": "101"}, "invalid_limit"), ({"limit": "\u0663"}, "invalid_limit"),
    ({"joined_from": "2026-02-30"}, "invalid_joined_from"), ({"joined_to": "0202-01-01"}, "invalid_joined_to"),
    ({"joined_from": "2026-11-20", "joined_to": "2026-11-01"}, "invalid_joined_range"),
    ({"store_id": "a#b"}, "invalid_store_id"), ({"tag": "x" * 41}, "invalid_tag"), ({"nope": "1"}, "unknown_parameter"),
])
def test_bad_parameters_are_named_400s(listed, query, code):
    r = listed.admin("GET", "/members", params=query)
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text


def test_lookup_by_identity_still_answers_one_member(listed):
    assert listed.member(openid="o-ml-1")["member_id"] == listed.retouched
    assert listed.member(openid="o-ml-none") is None


def test_aws_requests_per_page_are_bounded_by_the_shards_not_the_brand(listed, inproc):
    """Every page costs DynamoDB Queries on the index only (no Scan, no GetItem per member), at most
    member_list.MAX_QUERIES, about one per shard."""
    with dynamodb_calls() as calls:
        brand = listed.via(inproc)
        cursor, pages = None, []
        while True:
            calls.clear()
            r = brand.admin("GET", "/members", params={"limit": "3", **({"cursor": cursor} if cursor else {})})
            assert r.status_code == 200, r.text
            pages.append(list(calls))
            cursor = r.json()["cursor"]
            if cursor is None:
                break
        calls.clear()
        r = brand.admin("GET", "/members", params={"limit": "3", "store_id": "nowhere"})
        filtered = list(calls)
    for made in pages + [filtered]:
        assert made and set(made) == {"Query"}, made
        assert len(made) <= member_list.MAX_QUERIES, made
    # the first page reads every shard once, and a shard again only when its first small read was used
    # up (how many members land in one shard depends on their random ids); later pages read only the
    # shards not yet done
    assert AUDIENCE_SHARDS <= len(pages[0]) <= 2 * AUDIENCE_SHARDS
    assert AUDIENCE_SHARDS <= len(filtered) <= 2 * AUDIENCE_SHARDS
    print("Queries per page of 3:", [len(p) for p in pages], "filtered to nothing:", len(filtered))
    assert r.json() == {"members": [], "cursor": None}
