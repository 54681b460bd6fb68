"""The sender's decision per WeChat answer, on an in-memory ledger: an unknown outcome is final and
never resent, a transient answer is retried then released, a configuration error stops the chunk
without burning its audience, 45047 is a per-recipient answer. The same table decides welcome messages."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from chalicelib.domain import campaigns as rules
from chalicelib.services import sending
from chalicelib.storage.ledger_memory import MemoryLedger
from chalicelib.wechat.client import OutcomeUnknown, WeChatError
from tests.unit.test_sender_seam import Api   # a WeChat stand-in: answer(openid, n) for the n-th call

NOW = datetime(2025, 3, 1, 2, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    monkeypatch.setattr(rules, "backoff", lambda attempt, **kw: 0.0)
    monkeypatch.setattr(sending.ChunkRun, "_should_stop", lambda self: None)


def run(api: Api, n: int = 40) -> tuple[sending.ChunkRun, MemoryLedger]:
    spec = rules.spec({"name": "t", "message": {"medium": "oa_custom", "text": "hello"},
                       "audience": {"holdout_percent": 0}}, brand_timezone="Asia/Shanghai", now=NOW)
    body = {"brand_id": "b1", "campaign_id": "c1", "run_id": "once", "chunk": "0",
            "recipients": [rules.Recipient(f"m{i:03d}", None, f"o{i:03d}", True).pack() for i in range(n)]}
    ledger = MemoryLedger()
    chunk = sending.ChunkRun(SimpleNamespace(brand_id="b1"), SimpleNamespace(campaign_id="c1"), spec, "once", body,
                             api, lambda: 120.0, mp_app_id=None, ledger_store=ledger)
    chunk.go()
    return chunk, ledger


def states(ledger: MemoryLedger) -> Counter:
    """Recorded outcomes, and claims released for a later attempt (state retry, not recorded)."""
    out = Counter((e[0], e[1]) for e in ledger.outcomes().values())
    for item in ledger.items.values():
        text = item.get(ledger.mark_attr)
        if text and text.startswith("r|"):
            out[("retry", None)] += 1
    return out


def entry(ledger: MemoryLedger, member: str) -> dict:
    recorded = ledger.outcomes().get(member)
    if recorded is not None:
        return {"state": recorded[0], "reason": recorded[1], "errcode": recorded[2]}
    mark = ledger.mark_of(ledger.claim_item(member, None, None))
    return {"state": {"r": "retry", "c": "sending"}.get(mark.state, mark.state) if mark else None}


def test_an_unknown_outcome_is_recorded_as_failed_and_never_sent_again():
    unknown = {f"o{i:03d}" for i in range(0, 40, 3)}

    def answer(openid, n):
        return OutcomeUnknown("network, outcome unknown: ReadTimeoutError", "cgi-bin/message/custom/send") \
            if openid in unknown else None

    api = Api(answer)
    chunk, ledger = run(api)
    assert max(api.calls.values()) == 1 and len(api.calls) == 40          # one call each, no resend
    assert states(ledger) == Counter({("sent", None): 40 - len(unknown),
                                      ("failed", "outcome_unknown"): len(unknown)})
    assert chunk.retry_later == 0 and chunk.config_error is None          # nothing left to retry


def test_an_answer_proving_wechat_did_not_act_is_retried_and_then_released():
    def answer(openid, n):
        if openid == "o001":
            return WeChatError(-1, "HTTP 503", "cgi-bin/message/custom/send")
        return WeChatError(45009, "quota", "x") if (openid == "o002" and n == 1) else None

    api = Api(answer)
    chunk, ledger = run(api)
    assert api.calls["o001"] == sending.ATTEMPTS and api.calls["o002"] == 2
    assert entry(ledger, "m001")["state"] == "retry" and entry(ledger, "m002")["state"] == "sent"
    assert chunk.retry_later == 1


def test_45047_is_a_per_recipient_answer_recorded_once_not_retried():
    api = Api(lambda openid, n: WeChatError(45047, "out of response count limit", "cgi-bin/message/custom/send")
              if openid == "o005" else None)
    chunk, ledger = run(api)
    assert api.calls["o005"] == 1
    assert entry(ledger, "m005") == {"state": "skipped", "reason": "response_limit", "errcode": 45047}
    assert chunk.retry_later == 0


def test_a_configuration_error_stops_the_chunk_without_burning_its_audience():
    api = Api(lambda openid, n: WeChatError(40164, "invalid ip 1.2.3.4, not in whitelist",
                                            "cgi-bin/message/custom/send"))
    chunk, ledger = run(api, n=200)
    assert chunk.config_error is not None and chunk.config_error.errcode == 40164
    # the calls already in flight when the first answer came back, and no more: not 200
    assert sum(api.calls.values()) <= sending.CONCURRENCY and max(api.calls.values()) == 1
    # nobody was recorded as failed: those claimed are released for the chunk's next delivery
    # (credit kept), the rest were never claimed
    assert set(states(ledger)) == {("retry", None)} and not ledger.outcomes()
    assert len(ledger.items) < 200


def test_deliver_chunk_reports_a_configuration_error_so_sqs_brings_the_chunk_back(monkeypatch):
    seen = {}

    class Run:
        def __init__(self, *args, **kwargs):
            self.retry_later, self.config_error = 0, WeChatError(40164, "not in whitelist", "x")

        def go(self):
            seen["ran"] = True

    campaign = SimpleNamespace(state="running", spec=rules.spec(
        {"name": "t", "message": {"medium": "oa_custom", "text": "hi"}}, brand_timezone="Asia/Shanghai",
        now=NOW).to_json())
    monkeypatch.setattr(sending, "ChunkRun", Run)
    monkeypatch.setattr(sending.campaign_store, "get", lambda *a, **k: campaign)
    monkeypatch.setattr(sending.service, "check_completion", lambda *a: None)
    from chalicelib.services import wechat_apps
    from chalicelib.storage import tenancy
    monkeypatch.setattr(tenancy, "require_brand", lambda brand_id: SimpleNamespace(brand_id=brand_id, mp_app_id=None))
    monkeypatch.setattr(wechat_apps, "app_for", lambda brand, kind: None)
    with pytest.raises(sending.ChunkIncomplete, match="configuration error"):
        sending.deliver_chunk({"brand_id": "b1", "campaign_id": "c1", "run_id": "once", "recipients": []},
                              api=object())
    assert seen == {"ran": True}


# ---- the welcome message reads the same table ---------------------------------------------------

@pytest.fixture
def welcome(monkeypatch):
    from chalicelib.services import followups
    state = {"claims": set(), "forgotten": 0, "calls": 0, "failure": None}

    def record_inbound(brand_id, key, event, now):
        if key in state["claims"]:
            return False
        state["claims"].add(key)
        return True

    def forget_inbound(brand_id, key):
        state["claims"].discard(key)
        state["forgotten"] += 1

    class WelcomeApi:
        def custom_send_text(self, openid, text):
            state["calls"] += 1
            if state["failure"] is not None:
                raise state["failure"]

    monkeypatch.setattr(followups.tenancy, "require_brand", lambda brand_id: SimpleNamespace(brand_id=brand_id))
    monkeypatch.setattr(followups.coupons, "welcome_coupon", lambda brand, detail: None)
    monkeypatch.setattr(followups.members, "record_inbound", record_inbound)
    monkeypatch.setattr(followups.members, "forget_inbound", forget_inbound)
    monkeypatch.setattr(followups, "app_for", lambda brand, via: None)
    monkeypatch.setattr(followups, "api_for", lambda app: WelcomeApi())
    detail = {"brand_id": "b1", "event_id": "e1", "via": "oa", "openid": "o1", "message": "welcome!"}

    def deliver_until_done(failure, redeliveries: int = 3):
        """The follow-up queue delivering the task until it succeeds (or `redeliveries` times)."""
        state["failure"] = failure
        for _ in range(redeliveries):
            try:
                followups.welcome(dict(detail))
                return "done"
            except WeChatError:
                continue
        return "failing"
    return state, deliver_until_done


def test_a_welcome_whose_outcome_is_unknown_is_not_sent_again(welcome):
    state, deliver = welcome
    assert deliver(OutcomeUnknown("network, outcome unknown: ReadTimeoutError", "cgi-bin/message/custom/send")) == "done"
    assert deliver(None) == "done"                         # SQS delivers the task once more anyway
    assert state["calls"] == 1 and state["forgotten"] == 0


def test_a_welcome_refused_with_45047_is_not_retried_as_a_campaign_would_not(welcome):
    state, deliver = welcome
    assert deliver(WeChatError(45047, "out of response count limit", "cgi-bin/message/custom/send")) == "done"
    assert state["calls"] == 1 and state["forgotten"] == 0


def test_a_welcome_meeting_a_busy_wechat_is_released_and_retried(welcome):
    state, deliver = welcome
    assert deliver(WeChatError(-1, "HTTP 503", "cgi-bin/message/custom/send")) == "failing"
    assert state["calls"] == 3 and state["forgotten"] == 3


def test_a_welcome_meeting_a_configuration_error_is_released_for_the_dead_letter_queue(welcome):
    state, deliver = welcome
    assert deliver(WeChatError(40164, "invalid ip, not in whitelist", "cgi-bin/message/custom/send")) == "failing"
    assert state["forgotten"] == 3 and state["claims"] == set()
