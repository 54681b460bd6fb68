"""One table of WeChat answers: what each failure proves, and the same verdict for every caller."""
from __future__ import annotations

import pytest
import urllib3

from chalicelib.domain import campaigns as rules
from chalicelib.wechat import client
from chalicelib.wechat import errors as table
from chalicelib.wechat.client import OutcomeUnknown, WeChatApi, WeChatError


@pytest.mark.parametrize("errcode,api,kind,reason", [
    (-1, "cgi-bin/message/subscribe/send", table.TRANSIENT, "errcode_-1"),
    (45009, None, table.TRANSIENT, "errcode_45009"),
    (40001, "cgi-bin/message/custom/send", table.TOKEN_INVALID, "errcode_40001"),
    (42001, None, table.TOKEN_INVALID, "errcode_42001"),
    # 客服接口下行条数超过上限: a per-user quota, not a busy WeChat
    (45047, "cgi-bin/message/custom/send", table.RECIPIENT, "response_limit"),
    (43101, None, table.RECIPIENT, "unsubscribed"),
    (40003, None, table.RECIPIENT, "invalid_openid"),
    (47003, None, table.REQUEST, "errcode_47003"),
    (40037, None, table.REQUEST, "errcode_40037"),
    (40164, "cgi-bin/message/custom/send", table.CONFIG, "errcode_40164"),
    (40164, "cgi-bin/stable_token", table.CONFIG, "errcode_40164"),
    (60020, "cgi-bin/externalcontact/send_welcome_msg", table.CONFIG, "errcode_60020"),
    (40125, "cgi-bin/stable_token", table.CONFIG, "errcode_40125"),
    (40013, "cgi-bin/gettoken", table.CONFIG, "errcode_40013"),
    (48001, "cgi-bin/message/template/send", table.CONFIG, "errcode_48001"),
    # "invalid credential" from a token endpoint is a wrong secret, not a stale token
    (40001, "cgi-bin/gettoken", table.CONFIG, "errcode_40001"),
    (40001, "cgi-bin/stable_token", table.CONFIG, "errcode_40001"),
])
def test_every_answer_has_one_verdict(errcode, api, kind, reason):
    verdict = table.classify(errcode, api=api)
    assert (verdict.kind, verdict.reason) == (kind, reason)
    assert (verdict.hint is not None) == (kind == table.CONFIG)


def test_an_unknown_outcome_wins_over_any_code():
    assert table.classify(-1, outcome_unknown=True).kind == table.OUTCOME_UNKNOWN
    err = OutcomeUnknown("read timeout", "cgi-bin/message/custom/send")
    assert err.outcome_unknown and not err.transient and not err.permanent and not err.config_error
    assert not WeChatError(-1, "busy", "x").outcome_unknown and WeChatError(-1, "busy", "x").transient


@pytest.mark.parametrize("errcode,api,kind,reason", [
    (45047, "cgi-bin/message/custom/send", "skipped", "response_limit"),
    (45015, None, "skipped", "outside_48h"),
    (-1, None, "retry", "errcode_-1"),
    (45009, None, "retry", "errcode_45009"),
    (40164, None, "config", "errcode_40164"),
    (60020, None, "config", "errcode_60020"),
    (40125, "cgi-bin/stable_token", "config", "errcode_40125"),
    (48001, None, "config", "errcode_48001"),
])
def test_a_campaign_reads_the_same_table(errcode, api, kind, reason):
    assert rules.classify(errcode, api=api) == rules.Outcome(kind, reason)
    assert rules.classify(-1, outcome_unknown=True) == rules.Outcome("failed", "outcome_unknown")


@pytest.mark.parametrize("errcode", [45047, 43101, 40003, 47003])
def test_a_welcome_message_and_a_campaign_treat_a_permanent_answer_alike(errcode):
    err = WeChatError(errcode, "x", "cgi-bin/message/custom/send")
    assert err.permanent and not err.transient                    # what followups.welcome asks
    assert rules.classify(errcode, api=err.api).state in ("skipped", "failed")


def test_every_campaign_skip_reason_is_listed_in_the_stats():
    assert set(table.RECIPIENT_REASONS.values()) <= set(rules.SKIP_REASONS)


# ---- what the client concludes from the network -------------------------------------------------

class Response:
    def __init__(self, status: int, data: bytes, content_type: str = "application/json"):
        self.status, self.data, self.headers = status, data, {"Content-Type": content_type}


class Pool:
    """Stands in for urllib3's pool: raises or answers as told."""

    def __init__(self, outcome):
        self.outcome, self.calls = outcome, 0

    def request(self, *args, **kwargs):
        self.calls += 1
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def call_with(monkeypatch, outcome):
    pool = Pool(outcome)
    monkeypatch.setattr(client, "_http", lambda: pool)
    with pytest.raises(WeChatError) as err:
        WeChatApi("http://wechat.test", None).call("POST", "cgi-bin/message/custom/send", json_body={},
                                                  with_token=False)
    assert pool.calls == 1
    return err.value


@pytest.mark.parametrize("failure", [
    urllib3.exceptions.ConnectTimeoutError(None, "connect timed out"),
    urllib3.exceptions.NewConnectionError(None, "refused"),
    urllib3.exceptions.NameResolutionError("wechat.test", None, OSError("no such host")),
])
def test_a_connection_never_made_is_a_proven_non_delivery(monkeypatch, failure):
    err = call_with(monkeypatch, failure)
    assert err.transient and not err.outcome_unknown and err.errcode == -1


@pytest.mark.parametrize("failure", [
    urllib3.exceptions.ReadTimeoutError(None, "/cgi-bin/message/custom/send", "read timed out"),
    urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer")),
    urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead", None),
    urllib3.exceptions.SSLError("bad record mac"),
])
def test_a_failure_after_the_request_may_have_been_written_is_an_unknown_outcome(monkeypatch, failure):
    err = call_with(monkeypatch, failure)
    assert isinstance(err, OutcomeUnknown) and err.outcome_unknown and not err.transient


@pytest.mark.parametrize("answer,unknown", [
    (Response(503, b"busy", "text/plain"), False),
    (Response(500, b"{}"), False),
    (Response(502, b"<html>bad gateway</html>", "text/html"), False),
    (Response(504, b"<html>gateway timeout</html>", "text/html"), True),
    (Response(200, b"<html>maintenance</html>", "text/html"), True),
    (Response(200, b"[" * 5000), True),
    (Response(200, b'"ok"'), True),
])
def test_http_answers_that_prove_or_do_not_prove_wechat_did_not_act(monkeypatch, answer, unknown):
    err = call_with(monkeypatch, answer)
    assert err.outcome_unknown is unknown and err.transient is (not unknown)


def test_a_configuration_error_is_logged_as_such_and_counted(monkeypatch):
    from chalicelib import observability
    counted, logged = [], []
    monkeypatch.setattr(observability, "count", lambda name, value=1: counted.append(name))
    monkeypatch.setattr(observability.logger, "error", lambda msg, **kw: logged.append((msg, kw)))
    pool = Pool(Response(200, b'{"errcode": 40164, "errmsg": "invalid ip 1.2.3.4, not in whitelist"}'))
    monkeypatch.setattr(client, "_http", lambda: pool)
    api = WeChatApi("http://wechat.test", None, context={"brand_id": "b1", "app": "oa", "app_id": "wx1"})
    with pytest.raises(WeChatError) as err:
        api.call("POST", "cgi-bin/message/custom/send", json_body={}, with_token=False)
    assert err.value.config_error and not err.value.transient and not err.value.permanent
    assert counted == ["WeChatConfigError"]
    (msg, kw), = logged
    assert "configuration error" in msg and "whitelist" in msg
    assert kw["extra"]["brand_id"] == "b1" and kw["extra"]["errcode"] == 40164


def test_an_ordinary_refusal_is_not_counted_as_a_configuration_error(monkeypatch):
    from chalicelib import observability
    counted = []
    monkeypatch.setattr(observability, "count", lambda name, value=1: counted.append(name))
    err = call_with(monkeypatch, Response(200, b'{"errcode": 43101, "errmsg": "user refuse"}'))
    assert err.permanent and counted == []


class Tokens:
    def __init__(self, failure):
        self.failure = failure

    def get(self):
        raise self.failure

    def expire(self, token):
        raise AssertionError("no token was used")


def test_a_token_fetch_that_timed_out_is_a_proven_non_delivery_of_the_message(monkeypatch):
    pool = Pool(Response(200, b'{"errcode": 0}'))
    monkeypatch.setattr(client, "_http", lambda: pool)
    api = WeChatApi("http://wechat.test", Tokens(OutcomeUnknown("read timeout", "cgi-bin/stable_token")))
    with pytest.raises(WeChatError) as err:
        api.custom_send_text("o1", "hi")
    assert err.value.transient and not err.value.outcome_unknown and pool.calls == 0
