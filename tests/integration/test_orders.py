"""Orders and refunds through HTTP on the local stack: the till (Idempotency-Key), the admin import,
the member's totals and numbers under concurrency, and the events on the bus."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from tests.integration.conftest import table_items
from tests.integration.test_coupons import claim, make_template, member_session, redeem


def order(brand, body: dict, *, store: str = "sz", key: str | None = None, pos_key: str | None = None):
    return brand.api.call("POST", f"/pos/{brand.brand_id}/stores/{store}/orders", pos_key or brand.pos_keys[store],
                          body, headers={"Idempotency-Key": key or uuid.uuid4().hex})


def refund(brand, order_id: str, refund_id: str, amount: int, *, store: str = "sz", key: str | None = None):
    return brand.api.call("POST", f"/pos/{brand.brand_id}/stores/{store}/orders/{order_id}/refunds",
                          brand.pos_keys[store], {"refund_id": refund_id, "amount_cents": amount},
                          headers={"Idempotency-Key": key or uuid.uuid4().hex})


def member_code(brand, session: str) -> str:
    r = brand.api.call("GET", f"/mp/{brand.brand_id}/me/member-code", session)
    assert r.status_code == 200, r.text
    return r.json()["member_code"]


def refused(r, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


def test_a_walk_in_order_and_a_member_order_by_member_code(brand, bus):
    walk_in = order(brand, {"order_id": "w-1", "amount_cents": 2500, "till_id": "t1",
                            "items": [{"sku": "tea-1", "name": "茶", "quantity": 2, "unit_price_cents": 1250}]})
    assert walk_in.status_code == 201, walk_in.text
    assert walk_in.json() == {"order_id": "w-1", "member_id": None, "member_order_number": None}

    session = member_session(brand, "olive")
    r = order(brand, {"order_id": "m-1", "amount_cents": 9900, "member_code": member_code(brand, session)})
    assert r.status_code == 201, r.text
    member_id = r.json()["member_id"]
    assert r.json() == {"order_id": "m-1", "member_id": member_id, "member_order_number": 1}
    member = brand.member(openid="o_olive")
    assert member["member_id"] == member_id
    assert (member["orders"], member["gmv_cents"]) == (1, 9900)
    assert member["first_order_at"] == member["last_order_at"] is not None

    events = {e["detail"]["order_id"]: e for e in bus.events(brand.brand_id, "order.recorded")}
    assert set(events) == {"w-1", "m-1"}
    assert events["w-1"]["source"] == "siyu"
    assert {k: events["w-1"]["detail"][k] for k in ("member_id", "store_id", "guide_id", "channel", "amount_cents",
                                                     "member_order_number", "first_order")} == {
        "member_id": None, "store_id": "sz", "guide_id": None, "channel": None, "amount_cents": 2500,
        "member_order_number": None, "first_order": False}
    # the member joined at S1 (store sz, guide g1): the order is credited to that guide and channel
    assert {k: events["m-1"]["detail"][k] for k in ("member_id", "store_id", "guide_id", "channel", "amount_cents",
                                                     "member_order_number", "first_order")} == {
        "member_id": member_id, "store_id": "sz", "guide_id": "g1", "channel": "S1", "amount_cents": 9900,
        "member_order_number": 1, "first_order": True}


def test_a_replay_answers_the_first_answer_and_records_one_order(brand, bus):
    session = member_session(brand, "rita")
    body = {"order_id": "r-1", "amount_cents": 500, "member_code": member_code(brand, session)}
    first = order(brand, body, key="till-1-0001")
    assert first.status_code == 201, first.text
    with ThreadPoolExecutor(5) as pool:
        again = list(pool.map(lambda _: order(brand, body, key="till-1-0001"), range(5)))
    assert {a.status_code for a in again} == {201} and {a.text for a in again} == {first.text}
    member = brand.member(openid="o_rita")
    assert (member["orders"], member["gmv_cents"]) == (1, 500)
    assert len([e for e in bus.events(brand.brand_id, "order.recorded") if e["detail"]["order_id"] == "r-1"]) == 1


def test_a_reused_key_with_another_body_and_an_order_id_under_another_key_are_refused(brand):
    assert order(brand, {"order_id": "k-1", "amount_cents": 500}, key="till-k").status_code == 201
    before = table_items()
    refused(order(brand, {"order_id": "k-1", "amount_cents": 600}, key="till-k"), 409, "idempotency_key_reused")
    refused(order(brand, {"order_id": "k-1", "amount_cents": 500}, key="till-k2"), 409, "order_exists")
    assert table_items() == before


def test_a_redemption_key_and_an_order_key_may_be_the_same_text(brand):
    """A till that uses its order number as the Idempotency-Key of both its redemption and its order."""
    session = member_session(brand, "sam")
    template = make_template(brand)
    code = claim(brand, session, template["template_id"]).json()["coupon"]["code"]
    redemption = redeem(brand, "sz", code, key="ord-42", order="ord-42")
    assert redemption.status_code == 201, redemption.text
    r = order(brand, {"order_id": "ord-42", "amount_cents": 10_000, "member_code": member_code(brand, session),
                      "redemption_ids": [redemption.json()["redemption_id"]]}, key="ord-42")
    assert r.status_code == 201, r.text


def test_ten_concurrent_orders_of_one_member_get_numbers_one_to_ten(brand, bus):
    session = member_session(brand, "nina")
    code = member_code(brand, session)
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda i: order(brand, {"order_id": f"n-{i}", "amount_cents": 100 + i,
                                                        "member_code": code}), range(10)))
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
    assert sorted(a.json()["member_order_number"] for a in answers) == list(range(1, 11))
    member = brand.member(openid="o_nina")
    assert (member["orders"], member["gmv_cents"]) == (10, sum(100 + i for i in range(10)))
    events = [e["detail"] for e in bus.events(brand.brand_id, "order.recorded")]
    assert sorted(e["member_order_number"] for e in events) == list(range(1, 11))
    assert [e["first_order"] for e in events].count(True) == 1


def test_refunds_up_to_the_amount_and_not_one_cent_more(brand, bus):
    session = member_session(brand, "rafa")
    assert order(brand, {"order_id": "f-1", "amount_cents": 1000,
                         "member_code": member_code(brand, session)}).status_code == 201
    first = refund(brand, "f-1", "rf-1", 600, key="rk-1")
    assert first.status_code == 201, first.text
    assert first.json() == {"refund_id": "rf-1", "order_id": "f-1", "amount_cents": 600, "refunded_cents": 600}
    assert refund(brand, "f-1", "rf-1", 600, key="rk-1").text == first.text          # a replay
    refused(refund(brand, "f-1", "rf-1", 700, key="rk-1"), 409, "idempotency_key_reused")
    refused(refund(brand, "f-1", "rf-1", 100), 409, "refund_exists")
    before = table_items()
    refused(refund(brand, "f-1", "rf-2", 401), 409, "refund_exceeds_order")
    refused(refund(brand, "f-1", "rf-2", 100, store="sh"), 404, "unknown_order")
    refused(refund(brand, "nope", "rf-2", 100), 404, "unknown_order")
    assert table_items() == before
    assert refund(brand, "f-1", "rf-2", 400).status_code == 201
    member = brand.member(openid="o_rafa")
    assert (member["orders"], member["gmv_cents"], member["refunded_cents"]) == (1, 0, 1000)
    events = sorted((e["detail"] for e in bus.events(brand.brand_id, "order.refunded")), key=lambda d: d["refund_id"])
    assert [(e["refund_id"], e["amount_cents"], e["refunded_cents"], e["guide_id"], e["channel"]) for e in events] == [
        ("rf-1", 600, 600, "g1", "S1"), ("rf-2", 400, 1000, "g1", "S1")]


def test_two_refunds_racing_for_the_last_amount_one_wins(brand):
    assert order(brand, {"order_id": "race-1", "amount_cents": 1000}).status_code == 201
    assert refund(brand, "race-1", "a", 700).status_code == 201
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda rid: refund(brand, "race-1", rid, 300), ["b", "c"]))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    assert [a.json()["error"]["code"] for a in answers if a.status_code == 409] == ["refund_exceeds_order"]


def test_linked_redemptions_must_be_this_stores(brand):
    session = member_session(brand, "lily")
    template = make_template(brand)
    code = claim(brand, session, template["template_id"]).json()["coupon"]["code"]
    redemption_id = redeem(brand, "sz", code).json()["redemption_id"]
    before = table_items()
    refused(order(brand, {"order_id": "l-1", "amount_cents": 100, "redemption_ids": [redemption_id]}, store="sh"),
            404, "unknown_redemption")
    refused(order(brand, {"order_id": "l-1", "amount_cents": 100, "redemption_ids": ["rdm_nosuchredemption"]}),
            404, "unknown_redemption")
    assert table_items() == before
    assert order(brand, {"order_id": "l-1", "amount_cents": 100, "redemption_ids": [redemption_id]}).status_code == 201
    refused(order(brand, {"order_id": "l-2", "amount_cents": 100, "redemption_ids": [redemption_id]}),
            409, "redemption_linked")


def test_bad_orders_are_refused_and_write_nothing(brand):
    before = table_items()
    cases = [({"amount_cents": 100}, "invalid_order_id"),
             ({"order_id": "a#b", "amount_cents": 100}, "invalid_order_id"),
             ({"order_id": "x" * 65, "amount_cents": 100}, "invalid_order_id"),
             ({"order_id": "b-1", "amount_cents": 0}, "invalid_amount_cents"),
             ({"order_id": "b-1", "amount_cents": 1.5}, "invalid_amount_cents"),
             ({"order_id": "b-1", "amount_cents": "100"}, "invalid_amount_cents"),
             ({"order_id": "b-1", "amount_cents": 10 ** 12}, "invalid_amount_cents"),
             ({"order_id": "b-1", "amount_cents": 100, "occurred_at": "2999-01-01T00:00:00Z"}, "invalid_occurred_at"),
             ({"order_id": "b-1", "amount_cents": 100, "occurred_at": "2026-01-01T00:00:00"}, "invalid_occurred_at"),
             ({"order_id": "b-1", "amount_cents": 100, "items": [{"sku": "s", "quantity": 1}] * 101}, "invalid_items"),
             ({"order_id": "b-1", "amount_cents": 100, "items": [{"sku": "s", "quantity": 0,
                                                                  "unit_price_cents": 1}]}, "invalid_items"),
             ({"order_id": "b-1", "amount_cents": 100, "member_code": "m_x.1.AAAA"}, "invalid_member_code"),
             ({"order_id": "b-1", "amount_cents": 100, "member_id": "m_nosuchmember"}, "unknown_member"),
             ({"order_id": "b-1", "amount_cents": 100, "guide_id": "nobody"}, "unknown_guide"),
             ({"order_id": "b-1", "amount_cents": 100, "member_id": "m_a", "member_code": "x"}, "ambiguous_member"),
             ({"order_id": "b-1", "amount_cents": 100, "colour": "red"}, "unknown_field")]
    for body, code in cases:
        r = order(brand, body)
        assert 400 <= r.status_code < 500 and r.json()["error"]["code"] == code, (body, r.text)
    r = brand.api.call("POST", f"/pos/{brand.brand_id}/stores/sz/orders", brand.pos_keys["sz"],
                       {"order_id": "b-1", "amount_cents": 100})
    refused(r, 400, "missing_idempotency_key")
    assert table_items() == before


def test_a_pos_key_of_another_store_is_refused(brand):
    before = table_items()
    refused(order(brand, {"order_id": "p-1", "amount_cents": 100}, store="sz", pos_key=brand.pos_keys["sh"]),
            403, "forbidden")
    assert table_items() == before
    assert order(brand, {"order_id": "p-1", "amount_cents": 100}).status_code == 201
    before = table_items()
    r = brand.api.call("POST", f"/pos/{brand.brand_id}/stores/sz/orders/p-1/refunds", brand.pos_keys["sh"],
                       {"refund_id": "p-r", "amount_cents": 1}, headers={"Idempotency-Key": "k"})
    refused(r, 403, "forbidden")
    assert table_items() == before


IMPORTED = 90     # rows of one call besides the ten special ones; the 500 limit has its own test


def test_an_import_with_duplicates_and_bad_rows(brand, bus, inproc):
    session = member_session(brand, "ivy")
    assert order(brand, {"order_id": "imp-0", "amount_cents": 100,
                         "member_code": member_code(brand, session)}).status_code == 201
    rows = [{"order_id": f"imp-{i}", "amount_cents": 100 + i, "store_id": "sz" if i % 2 else None,
             "occurred_at": "2026-10-01T12:00:00+08:00"} for i in range(IMPORTED)]
    for i in range(0, IMPORTED, 10):
        rows[i]["unionid"] = "u_ivy"
    rows[3]["openid"] = "o_ivy"
    rows += [dict(rows[5]),                                                    # N: a duplicate in the call
             {"order_id": "bad-1", "amount_cents": -5, "store_id": None},      # N+1
             {"order_id": "bad-2", "amount_cents": 100, "store_id": "nowhere"},  # N+2
             {"order_id": "bad-3", "amount_cents": 100, "store_id": None, "unionid": "u_stranger"},  # N+3
             "not an order",                                                   # N+4
             {"order_id": "bad-5", "amount_cents": 100},                       # N+5: store_id missing
             {"order_id": "imp-x", "amount_cents": 100, "store_id": "sz", "member_code": "abc"},  # N+6
             {"order_id": "ok-497", "amount_cents": 100, "store_id": "sh"},
             {"order_id": "ok-498", "amount_cents": 100, "store_id": None},
             {"order_id": "ok-499", "amount_cents": 100, "store_id": None, "openid": "o_ivy"}]
    refunds = [{"order_id": "imp-10", "refund_id": "irf-1", "amount_cents": 50},
               {"order_id": "imp-10", "refund_id": "irf-1", "amount_cents": 50},
               {"order_id": "imp-10", "refund_id": "irf-2", "amount_cents": 1000}]
    # in-process: the emulator applies writes one at a time, so a big import is slow over HTTP here
    r = brand.via(inproc).admin("POST", "/order-imports", {"orders": rows, "refunds": refunds})
    assert r.status_code == 200, r.text
    result = r.json()
    # imp-0 was recorded at the till; imp-5 is in the call twice (one of the two is the duplicate)
    assert (result["accepted"], result["duplicates"]) == (IMPORTED + 2, 2)
    assert {(x["index"], x["code"]) for x in result["rejected"]} == {
        (IMPORTED + 1, "invalid_amount_cents"), (IMPORTED + 2, "unknown_store"), (IMPORTED + 3, "unknown_member"),
        (IMPORTED + 4, "invalid_order"), (IMPORTED + 5, "invalid_store_id"), (IMPORTED + 6, "unknown_field")}
    assert all(x["message"] for x in result["rejected"])
    assert (result["refunds"]["accepted"], result["refunds"]["duplicates"]) == (1, 1)
    assert [(x["index"], x["code"]) for x in result["refunds"]["rejected"]] == [(2, "refund_exceeds_order")]
    member = brand.member(unionid="u_ivy")
    # the till's imp-0, more by unionid (imp-10, imp-20, ...), imp-3 by openid and ok-499
    assert member["orders"] == IMPORTED // 10 + 2
    assert member["gmv_cents"] == 100 + sum(100 + i for i in range(10, IMPORTED, 10)) + 103 + 100 - 50
    assert member["first_order_at"] == "2026-10-01T04:00:00Z"
    again = brand.admin("POST", "/order-imports", {"orders": rows[:50]})
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 50)
    recorded = [e for e in bus.events(brand.brand_id, "order.recorded")]
    assert len(recorded) == 1 + IMPORTED + 2 and len({e["detail"]["order_id"] for e in recorded}) == IMPORTED + 3
    numbers = sorted(e["detail"]["member_order_number"] for e in recorded if e["detail"]["member_id"])
    assert numbers == list(range(1, IMPORTED // 10 + 3))


def test_an_import_takes_at_most_500_orders(brand):
    r = brand.admin("POST", "/order-imports", {"orders": [{"order_id": f"o-{i}", "amount_cents": 1, "store_id": None}
                                                          for i in range(501)]})
    refused(r, 400, "invalid_orders")
