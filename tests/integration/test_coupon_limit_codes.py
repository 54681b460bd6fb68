"""A per-member limit of 1 carried by the coupon's code (domain.coupons.limited_by_code): every issue
path (the mini-program claim, a welcome/issue-key issue, a campaign run through the ledger) writes the
member's coupon under one code per (template, member), so whichever paths race, the member holds one
coupon; no claims counter is written, and one counted before (the old path) still refuses; a
campaign's retry finds its own coupon, and only its own coupon proves its send."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from tests.integration.campaign_fixtures import add_members
from tests.integration.test_campaign_coupons_ledger import table_kinds
from tests.integration.test_coupons import claim, make_template, member_session


def _brand(brand):
    from chalicelib.storage import tenancy
    return tenancy.require_brand(brand.brand_id)


def _run(brand, template_id: str, campaign: str, run: str = "once"):
    from chalicelib.services.campaign_coupons import CampaignCoupons
    return CampaignCoupons(_brand(brand), campaign, run, template_id)


def _coupons_of(brand, member_id: str, template_id: str) -> list:
    from chalicelib.storage import coupons as coupon_store
    return [c for c in coupon_store.wallet(brand.brand_id, member_id, datetime(2000, 1, 1, tzinfo=timezone.utc))
            if c.template_id == template_id]


def _member_id(brand, session_name: str) -> str:
    return brand.member(openid=f"o_{session_name}")["member_id"]


def _made_before_limit_codes(brand, template_id: str) -> None:
    """The template as the code before limit codes created it (no `limit_code`): its members' claims
    counters may hold claims, so every path still reads or checks them."""
    from chalicelib.services import coupons
    from chalicelib.storage.coupons import tpl_pk
    from chalicelib.storage.models import CouponTemplate
    CouponTemplate(tpl_pk(brand.brand_id, template_id), "TEMPLATE").update(actions=[CouponTemplate.limit_code.remove()])
    coupons._templates.invalidate((brand.brand_id, template_id))
    assert coupons.cached_template(brand.brand_id, template_id).claims_counted


def test_a_claim_then_a_campaign_gives_one_coupon_and_writes_no_claims_counter(brand):
    template = make_template(brand, per_member_limit=1)["template_id"]
    session = member_session(brand, "lim1")
    r = claim(brand, session, template)
    assert r.status_code == 201, r.text
    member = _member_id(brand, "lim1")
    run = _run(brand, template, "cmp_after_claim")
    assert run.by_code
    assert run.issue(member, datetime.now(timezone.utc)) == "none"
    assert run.evidence(member) is None                 # the claim's coupon proves nothing of this run's send
    coupons = _coupons_of(brand, member, template)
    assert [c.code for c in coupons] == [r.json()["coupon"]["code"]] and coupons[0].source == "claim"
    assert coupons[0].expires_at is None        # the limit: kept while the template can issue (rules.kept_until)
    assert table_kinds(brand.brand_id, f"B#{brand.brand_id}#CLAIMS#") == 0
    assert claim(brand, session, template).json()["error"]["code"] == "limit_reached"


def test_a_campaign_then_a_claim_is_refused_and_the_run_retry_finds_its_own(brand):
    template = make_template(brand, per_member_limit=1)["template_id"]
    session = member_session(brand, "lim2")
    member = _member_id(brand, "lim2")
    now = datetime.now(timezone.utc)
    first = _run(brand, template, "cmp_first")
    code = first.issue(member, now)
    assert code not in ("none", None)
    assert first.issue(member, now) == code                         # the run's retry: its own coupon
    assert _run(brand, template, "cmp_first").evidence(member) == code   # a later attempt of the run: sent
    assert _run(brand, template, "cmp_first", "again").evidence(member) is None   # another run of it: not
    assert _run(brand, template, "cmp_second").issue(member, now) == "none"
    r = claim(brand, session, template)
    assert r.status_code == 409 and r.json()["error"]["code"] == "limit_reached", r.text
    assert [c.code for c in _coupons_of(brand, member, template)] == [code]
    assert table_kinds(brand.brand_id, f"B#{brand.brand_id}#CLAIMS#") == 0


def test_claims_and_campaign_issues_racing_never_give_a_member_two_coupons(brand):
    template = make_template(brand, per_member_limit=1)["template_id"]
    names = [f"race{i}" for i in range(8)]
    sessions = {n: member_session(brand, n) for n in names}
    members = {n: _member_id(brand, n) for n in names}
    runs = [_run(brand, template, f"cmp_race_{k}") for k in range(2)]
    start = threading.Barrier(len(names) * 4)

    def by_claim(n):
        start.wait()
        r = claim(brand, sessions[n], template)
        assert r.status_code in (201, 409), r.text
        return ("claim", n, r.json()["coupon"]["code"] if r.status_code == 201 else "none")

    def by_run(n, k):
        start.wait()
        return (f"run{k}", n, runs[k].issue(members[n], datetime.now(timezone.utc)))

    with ThreadPoolExecutor(len(names) * 4) as pool:
        futures = [pool.submit(by_claim, n) for n in names for _ in range(2)]
        futures += [pool.submit(by_run, n, k) for n in names for k in range(2)]
        answers = [f.result() for f in futures]
    for n in names:
        held = _coupons_of(brand, members[n], template)
        won = [code for _path, who, code in answers if who == n and code != "none"]
        assert len(held) == 1, (n, held)
        assert set(won) == {held[0].code}, (n, won)           # whoever won told the truth, the rest "none"
        assert len(won) == 1                                  # one winner among four issuers
    assert table_kinds(brand.brand_id, f"B#{brand.brand_id}#CLAIMS#") == 0


def test_a_claim_counted_before_limit_codes_still_refuses_every_path(brand):
    from chalicelib.services import coupons
    from chalicelib.storage.coupons import claims_key
    from chalicelib.storage.models import MemberClaims
    template = make_template(brand, per_member_limit=1)["template_id"]
    _made_before_limit_codes(brand, template)
    session = member_session(brand, "legacy")
    member = _member_id(brand, "legacy")
    # what the old path left: the counter at 1 (its coupon under a random code)
    MemberClaims(*claims_key(brand.brand_id, member, template), claimed=1).save()
    assert _run(brand, template, "cmp_legacy").issue(member, datetime.now(timezone.utc)) == "none"
    assert claim(brand, session, template).json()["error"]["code"] == "limit_reached"
    assert coupons.issue_coupon(_brand(brand), member, template, issue_key=f"welcome:{member}:{template}",
                                source="welcome") is None
    assert _coupons_of(brand, member, template) == []


def test_an_issue_key_retry_returns_its_coupon_and_another_key_gets_none(brand):
    from chalicelib.services import coupons
    template = make_template(brand, per_member_limit=1)["template_id"]
    [openid] = add_members(brand, 1)
    member = brand.member(openid=openid)["member_id"]
    b = _brand(brand)
    code = coupons.issue_coupon(b, member, template, issue_key=f"welcome:{member}:{template}", source="welcome")
    assert code is not None
    assert coupons.issue_coupon(b, member, template, issue_key=f"welcome:{member}:{template}", source="welcome") == code
    assert coupons.issue_coupon(b, member, template, issue_key=f"campaign:c:r:{member}", source="campaign") is None
    assert _run(brand, template, "cmp_after_welcome").issue(member, datetime.now(timezone.utc)) == "none"
    assert [c.code for c in _coupons_of(brand, member, template)] == [code]


def test_a_higher_limit_keeps_the_claims_counter_and_run_codes(brand):
    from chalicelib.storage.coupons import claims_key
    from chalicelib.storage.models import MemberClaims
    template = make_template(brand, per_member_limit=2)["template_id"]
    [openid] = add_members(brand, 1)
    member = brand.member(openid=openid)["member_id"]
    now = datetime.now(timezone.utc)
    codes = [_run(brand, template, f"cmp_two_{k}").issue(member, now) for k in range(3)]
    assert codes[0] != codes[1] and "none" not in codes[:2] and codes[2] == "none"
    assert MemberClaims.get(*claims_key(brand.brand_id, member, template), consistent_read=True).claimed == 2
    assert not _run(brand, template, "cmp_two_0").by_code


def test_the_first_touch_the_chunk_carries_keys_the_coupon_and_the_old_counter_still_refuses(brand):
    from chalicelib.services import coupons
    from chalicelib.storage import coupons as coupon_store
    from chalicelib.storage.coupons import claims_key
    from chalicelib.storage.models import MemberClaims
    template = make_template(brand, per_member_limit=1)["template_id"]
    openids = add_members(brand, 2)
    first, second = (brand.member(openid=o)["member_id"] for o in openids)
    now = datetime.now(timezone.utc)
    run = _run(brand, template, "cmp_touch")
    code = run.issue(first, now, ("sz", "g_7", "S9"))          # no member read: the planner's copy
    c = coupon_store.get_coupon(brand.brand_id, code)
    assert (c.touch_store_id, c.touch_guide_id, c.touch_scene, c.issued_by) == ("sz", "g_7", "S9", "cmp_touch#once")
    MemberClaims(*claims_key(brand.brand_id, second, template), claimed=1).save()
    assert coupons.cached_template(brand.brand_id, template).claims_counted is False
    assert run.issue(second, now, ("sz", None, "S1")) not in ("none", None)    # made since: no counter read
    old = make_template(brand, per_member_limit=1)["template_id"]
    _made_before_limit_codes(brand, old)
    MemberClaims(*claims_key(brand.brand_id, second, old), claimed=1).save()
    assert _run(brand, old, "cmp_touch").issue(second, now, ("sz", None, "S1")) == "none"
    assert _coupons_of(brand, second, old) == []
