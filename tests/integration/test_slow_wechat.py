"""A slow WeChat (answers after the sender gave up, having acted) on the local stack: every recipient
gets at most one message, and the campaign's stats account for everyone."""
from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from chalicelib.storage.campaigns import credits_of
from tests.integration.campaign_fixtures import (TEMPLATE, add_members, clear_fault, create_campaign, fault,
                                                 grant_credits, sent_to, wait_for)

SUBSCRIBE_SEND = "cgi-bin/message/subscribe/send"
LATENCY_MS = 500            # WeChat's answer comes after this ...
SEND_TIMEOUT = 0.3          # ... and the sender stops waiting after this


def settled_log(stack, brand, wait: float = LATENCY_MS / 1000 + 0.5) -> list[dict]:
    """The simulator's log once the calls still sleeping in it have acted."""
    time.sleep(wait)
    return sent_to(stack, brand)


def test_a_slow_wechat_sends_each_recipient_at_most_once_and_stats_account_for_everyone(stack, brand, monkeypatch):
    from chalicelib.services import sending
    monkeypatch.setattr(sending, "SEND_TIMEOUT", SEND_TIMEOUT)
    # four calls in flight (a small container): the slow spell covers the first calls only, the
    # rest of the audience meets a quick WeChat again
    workers = ThreadPoolExecutor(4, thread_name_prefix="wechat-send-test")
    monkeypatch.setattr(sending, "CONCURRENCY", 4)
    monkeypatch.setattr(sending, "pool", lambda: workers)
    openids = add_members(brand, 20)
    grant_credits(brand, openids)
    created = create_campaign(brand)
    campaign_id = created["campaign_id"]
    fault(stack, SUBSCRIBE_SEND, latency_ms=LATENCY_MS)
    try:
        stack.scheduler.fire(created["schedule"]["name"])
        # until a few sends came back without an answer (or, as before the fix, a resend went out)
        wait_for(brand, campaign_id, lambda c: c["stats"]["failed"] >= 3 or max(
            Counter(s["touser"] for s in sent_to(stack, brand)).values(), default=0) > 1, timeout=30)
    finally:
        clear_fault(stack, SUBSCRIBE_SEND)
    done = wait_for(brand, campaign_id, lambda c: c["state"] == "completed", timeout=60)
    workers.shutdown(wait=True)
    log = settled_log(stack, brand)

    per_member = Counter(s["touser"] for s in log)
    assert max(per_member.values()) == 1                                  # at most one message each
    stats = done["stats"]
    unknown = stats["failed_reasons"].get("outcome_unknown", 0)
    assert unknown >= 3 and stats["sent"] > 0
    assert stats["sent"] + unknown == len(openids) == stats["targeted"]   # everyone accounted for
    assert stats["failed"] == unknown and sum(stats["skipped"].values()) == 0
    # the late calls acted: WeChat logged every unknown too, so sent = its log minus the unknowns
    assert stats["sent"] == len(log) - unknown and set(per_member) == set(openids)

    failed = brand.admin("GET", f"/campaigns/{campaign_id}/deliveries?state=failed&limit=100").json()["deliveries"]
    assert len(failed) == unknown and {d["reason"] for d in failed} == {"outcome_unknown"}
    # every credit was consumed, the unknowns' included: their message may be (and here is) out
    assert all(credits_of(brand.brand_id, o).get(TEMPLATE) == 0 for o in openids)
