"""A campaign's control group on the local stack: drawn by a hash of campaign and member among the
members the run could reach, planned but never sent, recorded `held_out` (credit kept), the same on
a duplicate fire; the deliveries API lists them."""
from __future__ import annotations

from collections import Counter

from chalicelib.domain import campaigns as rules
from tests.integration.campaign_fixtures import (TEMPLATE, add_members, create_campaign, grant_credits, sent_to,
                                                 wait_for)


def test_a_holdout_is_planned_not_sent_and_drawn_only_among_the_reachable(stack, brand):
    from chalicelib.storage.campaigns import credits_of
    openids = add_members(brand, 60)
    credited = openids[:45]                                   # 15 cannot be reached: no credit
    grant_credits(brand, credited)
    created = create_campaign(brand, audience={"holdout_percent": 30})
    cid = created["campaign_id"]
    stack.scheduler.fire(created["schedule"]["name"], times=2)        # a duplicate fire changes nothing
    done = wait_for(brand, cid, lambda c: c["state"] == "completed", timeout=120)

    member_of = {o: brand.member(openid=o)["member_id"] for o in openids}
    expected = {o for o in credited if rules.held_out(cid, member_of[o], 30)}
    assert 3 <= len(expected) <= 25                           # ~30 % of 45, whatever the ids drawn
    per_member = Counter(s["touser"] for s in sent_to(stack, brand))
    assert set(per_member) == set(credited) - expected and max(per_member.values()) == 1
    stats = done["stats"]
    assert (stats["targeted"], stats["sent"], stats["held_out"]) == (60, 45 - len(expected), len(expected))
    assert stats["skipped"]["no_credit"] == 15                # not reachable: never in the control group
    assert all(credits_of(brand.brand_id, o)[TEMPLATE] == 1 for o in expected)       # nothing consumed
    assert all(credits_of(brand.brand_id, o)[TEMPLATE] == 0 for o in set(credited) - expected)

    held = brand.admin("GET", f"/campaigns/{cid}/deliveries?state=held_out&limit=500").json()["deliveries"]
    assert {d["member_id"] for d in held} == {member_of[o] for o in expected}
    r = brand.admin("POST", "/campaigns", {"message": {"template_id": "T"}, "audience": {"holdout_percent": 51}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_holdout_percent"
    r = brand.admin("POST", "/campaigns", {"message": {"template_id": "T"}, "attribution_days": 31})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_attribution_days"
