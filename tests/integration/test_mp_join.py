"""A mini-program shopper who never scanned a code (search, a share, the OA menu) joins by claiming a
coupon or recording a subscription: one member, source mini_program, one member.joined, under concurrency."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.integration.test_coupons import claim, make_template, member_session


def test_concurrent_claims_from_a_fresh_session_make_one_member_and_honour_the_limit(brand, bus):
    template = make_template(brand, per_member_limit=2, total_stock=100)
    session = brand.mp_session("o_searcher")
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: claim(brand, session, template["template_id"]), range(10)))
    assert sorted(a.status_code for a in answers) == [201, 201] + [409] * 8, [a.text for a in answers]
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"limit_reached"}
    member = brand.member(openid="o_searcher")
    assert member["first_touch"] == {"store_id": None, "guide_id": None, "scene": None, "source": "mini_program",
                                     "via": "mp", "at": member["first_touch"]["at"]}
    assert member["touches"] == 1 and member["mp_openid"] == "o_searcher"
    assert sorted(c["template_id"] for c in member["coupons"]) == [template["template_id"]] * 2
    joined = bus.events(brand.brand_id, "member.joined")
    assert [e["detail"]["member_id"] for e in joined] == [member["member_id"]]
    assert joined[0]["detail"]["first_touch"]["source"] == "mini_program"


def test_a_subscription_from_a_fresh_session_makes_the_shopper_a_member(brand, bus):
    session = brand.mp_session("o_sharer", "u_sharer")
    r = brand.api.call("POST", f"/mp/{brand.brand_id}/me/subscriptions", session, {"accepted": ["TPL_news"]})
    assert r.status_code == 200, r.text
    member = brand.member(unionid="u_sharer")
    assert r.json()["member_id"] == member["member_id"] and r.json()["credits"] == {"TPL_news": 1}
    assert member["first_touch"]["source"] == "mini_program" and member["mp_openid"] == "o_sharer"
    r = brand.api.call("POST", f"/mp/{brand.brand_id}/me/subscriptions", session, {"accepted": ["TPL_news"]})
    assert r.json()["member_id"] == member["member_id"]
    assert len(bus.events(brand.brand_id, "member.joined")) == 1


def test_a_member_who_scanned_keeps_their_attribution_when_claiming(brand):
    session = member_session(brand, "scanner")            # joined through channel code S1
    before = brand.member(openid="o_scanner")
    assert claim(brand, session, make_template(brand)["template_id"]).status_code == 201
    after = brand.member(openid="o_scanner")
    assert after["first_touch"] == before["first_touch"] and after["last_touch"] == before["last_touch"]
    assert after["touches"] == before["touches"] and after["member_id"] == before["member_id"]


def test_reading_the_wallet_makes_no_one_a_member(brand):
    session = brand.mp_session("o_reader")
    r = brand.api.call("GET", f"/mp/{brand.brand_id}/me/coupons", session)
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_a_member"
    assert brand.member(openid="o_reader") is None


def test_a_claim_refused_before_stock_is_reached_makes_no_one_a_member(brand):
    session = brand.mp_session("o_early")
    r = claim(brand, session, "tpl_nope")
    assert r.status_code == 404
    assert brand.member(openid="o_early") is None
