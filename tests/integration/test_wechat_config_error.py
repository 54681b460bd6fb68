"""A campaign meeting a WeChat configuration error (the egress IP not whitelisted: 40164) on the local
stack: nobody is recorded as failed, no credit is lost, and once the whitelist is fixed the chunks'
own SQS redeliveries send everyone exactly once."""
from __future__ import annotations

from collections import Counter

from chalicelib.storage.campaigns import credits_of
from tests.integration.campaign_fixtures import (TEMPLATE, add_members, clear_fault, create_campaign, fault,
                                                 grant_credits, sent_to, sim, wait_for)

SUBSCRIBE_SEND = "cgi-bin/message/subscribe/send"


def test_a_configuration_error_holds_the_campaign_until_fixed_then_everyone_gets_one_message(stack, brand):
    openids = add_members(brand, 20)
    grant_credits(brand, openids)
    app_id = brand.app("mp")["app_id"]
    created = create_campaign(brand)
    campaign_id = created["campaign_id"]
    fault(stack, SUBSCRIBE_SEND, errcode=40164, rate=1.0)        # "invalid ip ..., not in whitelist"
    try:
        stack.scheduler.fire(created["schedule"]["name"])
        # WeChat refused a few calls, and the campaign recorded nobody as failed for it
        held = wait_for(brand, campaign_id, lambda c: sim(stack, "GET", f"calls?app_id={app_id}").get(
            SUBSCRIBE_SEND, 0) >= 3, timeout=30)
        assert held["stats"]["failed"] == 0 and held["stats"]["sent"] == 0
    finally:
        clear_fault(stack, SUBSCRIBE_SEND)                       # the brand whitelists the IPs
    done = wait_for(brand, campaign_id, lambda c: c["state"] == "completed", timeout=90)

    stats = done["stats"]
    assert (stats["sent"], stats["failed"], sum(stats["skipped"].values())) == (20, 0, 0)
    per_member = Counter(s["touser"] for s in sent_to(stack, brand))
    assert set(per_member) == set(openids) and max(per_member.values()) == 1
    assert all(credits_of(brand.brand_id, o).get(TEMPLATE) == 0 for o in openids)    # one credit each
