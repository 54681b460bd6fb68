"""The pure rules of orders and refunds (chalicelib.domain.orders): what a till or an import may send."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.domain import orders as rules
from chalicelib.errors import BadRequest

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def code_of(body, **kw) -> str:
    with pytest.raises(BadRequest) as err:
        rules.order(body, store_id=kw.pop("store_id", "sz"), now=NOW, **kw)
    return err.value.code


def test_a_till_order_with_everything():
    o = rules.order({"order_id": "POS-2026:11.30_0001", "amount_cents": 12_345, "member_code": "m_a.1.x",
                     "guide_id": "g1", "till_id": "t-1", "occurred_at": "2026-11-30T19:00:00+08:00",
                     "redemption_ids": ["rdm_abc"], "items": [{"sku": "tea-1", "name": "龙井", "quantity": 2,
                                                               "unit_price_cents": 6000}]},
                    store_id="sz", now=NOW)
    assert (o.order_id, o.amount_cents, o.store_id, o.guide_id) == ("POS-2026:11.30_0001", 12_345, "sz", "g1")
    assert o.occurred_at == datetime(2026, 11, 30, 11, 0, tzinfo=timezone.utc)
    assert o.items[0] == rules.Line("tea-1", "龙井", 2, 6000) and o.redemption_ids == ("rdm_abc",)


def test_an_order_without_a_time_happened_now():
    assert rules.order({"order_id": "o1", "amount_cents": 1}, store_id="sz", now=NOW).occurred_at == NOW


@pytest.mark.parametrize("value", [0, -1, 1.0, 1.5, "100", True, None, rules.MAX_AMOUNT_CENTS + 1, 10 ** 30])
def test_amounts_are_positive_whole_cents_within_the_bound(value):
    assert code_of({"order_id": "o1", "amount_cents": value}) == "invalid_amount_cents"


@pytest.mark.parametrize("value", ["", "a#b", "a b", "a/b", "-lead", "x" * 65, "o\n", "o١", 12, None])
def test_order_ids_are_full_matched_and_bounded(value):
    assert code_of({"order_id": value, "amount_cents": 1}) == "invalid_order_id"


@pytest.mark.parametrize("value", ["2026-11-30T12:00:00", "1999-12-31T00:00:00Z", "2026-12-02T00:00:00Z",
                                   "9999-12-31T23:59:59-12:00", "yesterday", 1700000000])
def test_order_times_have_a_zone_and_lie_in_the_window_and_not_days_ahead(value):
    assert code_of({"order_id": "o1", "amount_cents": 1, "occurred_at": value}) == "invalid_occurred_at"


def test_a_till_clock_a_little_fast_is_accepted():
    ahead = (NOW + timedelta(hours=2)).isoformat()
    assert rules.order({"order_id": "o1", "amount_cents": 1, "occurred_at": ahead}, store_id="sz", now=NOW)


@pytest.mark.parametrize("items", [
    [{"sku": "s", "quantity": 1, "unit_price_cents": 1}] * (rules.MAX_ITEMS + 1),
    [{"sku": "s", "quantity": 0, "unit_price_cents": 1}],
    [{"sku": "s", "quantity": True, "unit_price_cents": 1}],
    [{"sku": "s", "quantity": 1, "unit_price_cents": -1}],
    [{"sku": "s", "quantity": 1, "unit_price_cents": 1, "colour": "red"}],
    [{"sku": "s", "name": "x" * 101, "quantity": 1, "unit_price_cents": 1}],
    [{"sku": "s", "name": "a\u0000b", "quantity": 1, "unit_price_cents": 1}],
    "tea", {"sku": "s"}, ["s"]])
def test_items_are_bounded_lines(items):
    assert code_of({"order_id": "o1", "amount_cents": 1, "items": items}) == "invalid_items"


def test_an_items_sku_is_an_external_id():
    assert code_of({"order_id": "o1", "amount_cents": 1,
                    "items": [{"sku": "a#b", "quantity": 1, "unit_price_cents": 1}]}) == "invalid_sku"


@pytest.mark.parametrize("value", [["x"] * 2, ["rdm_a"] * 2, ["rdm_" + str(i) for i in range(11)], "rdm_a",
                                   ["a b"], [1]])
def test_redemption_ids_are_few_distinct_and_minted(value):
    assert code_of({"order_id": "o1", "amount_cents": 1, "redemption_ids": value}) == "invalid_redemption_ids"


def test_the_member_is_named_once_and_unknown_fields_are_refused():
    assert code_of({"order_id": "o1", "amount_cents": 1, "member_id": "m_a", "member_code": "c"}) == "ambiguous_member"
    assert code_of({"order_id": "o1", "amount_cents": 1, "unionid": "u"}) == "unknown_field"      # not at a till
    assert code_of({"order_id": "o1", "amount_cents": 1, "member_code": "c", "store_id": None},
                   imported=True) == "unknown_field"
    assert code_of({"order_id": "o1", "amount_cents": 1, "member_id": "m_a#x"}) == "invalid_member_id"


def test_an_imported_order_names_its_store_or_null_for_online():
    online = rules.order({"order_id": "o1", "amount_cents": 1, "store_id": None, "openid": "oAbc"},
                         store_id=None, now=NOW, imported=True)
    assert (online.store_id, online.openid) == (None, "oAbc")
    assert code_of({"order_id": "o1", "amount_cents": 1}, store_id=None, imported=True) == "invalid_store_id"
    assert code_of({"order_id": "o1", "amount_cents": 1, "store_id": "SZ#1"}, store_id=None,
                   imported=True) == "invalid_store_id"


def test_a_replay_is_the_same_request_whatever_the_key_order_and_however_late():
    body = {"order_id": "o1", "amount_cents": 5, "till_id": "t1"}
    first = rules.order(body, store_id="sz", now=NOW)
    later = rules.order(dict(reversed(list(body.items()))), store_id="sz", now=NOW + timedelta(seconds=30))
    assert rules.request_hash(first) == rules.request_hash(later)
    assert rules.request_hash(first) != rules.request_hash(rules.order({**body, "amount_cents": 6}, store_id="sz",
                                                                        now=NOW))
    timed = {**body, "occurred_at": "2026-11-30T10:00:00Z"}
    assert rules.request_hash(rules.order(timed, store_id="sz", now=NOW)) != rules.request_hash(first)


def test_refunds_never_exceed_the_order():
    assert rules.refund_refusal(1000, 600, 400) is None
    assert rules.refund_refusal(1000, 600, 401) == "refund_exceeds_order"
    r = rules.refund({"refund_id": "r1", "amount_cents": 5}, order_id="o1", now=NOW)
    assert (r.order_id, r.refund_id, r.amount_cents) == ("o1", "r1", 5)
    with pytest.raises(BadRequest) as err:
        rules.refund({"refund_id": "r1", "amount_cents": 5, "order_id": "o2"}, order_id="o1", now=NOW)
    assert err.value.code == "unknown_field"


def test_member_totals_keep_the_earliest_and_latest_order_whatever_the_recording_order():
    none = rules.MemberTotals(orders=0, first_order_at=None, last_order_at=None)
    one = none.after("2026-11-30T10:00:00Z")
    two = one.after("2026-10-01T10:00:00Z")             # an older order imported later
    assert (two.orders, two.first_order_at, two.last_order_at) == (2, "2026-10-01T10:00:00Z", "2026-11-30T10:00:00Z")


def test_an_order_is_credited_to_its_guide_else_the_members_first_touch_guide_and_channel():
    o = rules.order({"order_id": "o1", "amount_cents": 1}, store_id="sz", now=NOW)
    touch = {"guide_id": "g1", "scene": "S1"}
    assert rules.attribution(o, "m_a", touch) == rules.Attribution("m_a", "sz", "g1", "S1")
    guided = rules.order({"order_id": "o1", "amount_cents": 1, "guide_id": "g2"}, store_id="sz", now=NOW)
    assert rules.attribution(guided, "m_a", touch).guide_id == "g2"
    assert rules.attribution(o, None, None) == rules.Attribution(None, "sz", None, None)
    event = rules.recorded_event("b", o, rules.attribution(o, "m_a", touch), 1, "2026-11-30T12:00:00Z", "pos")
    assert event["first_order"] is True and event["member_order_number"] == 1 and event["channel"] == "S1"
