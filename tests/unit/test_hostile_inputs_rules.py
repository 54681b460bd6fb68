"""Hostile inputs refused by pure rules: JSON nesting and lone surrogates, calendar-edge times, Unicode
digits, ids with a trailing newline, oversized cursors. Each was a 500 (or a silent acceptance)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import ids, untrusted
from chalicelib.domain import campaigns as c
from chalicelib.domain import coupons as rules
from chalicelib.domain import tenancy
from chalicelib.errors import BadRequest, NotFound

NOW = datetime(2026, 11, 11, 2, 0, tzinfo=timezone.utc)
EDGES = ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+01:00", "9999-12-31T00:00:00Z", "0001-01-01T00:00:00Z",
         "1999-12-31T23:59:59Z", "2037-01-01T00:00:00Z"]


def code_of(call, *args, **kwargs) -> str:
    with pytest.raises(BadRequest) as err:
        call(*args, **kwargs)
    assert err.value.message
    return err.value.code


# ---- JSON from callers ---------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [b"[" * 5000, b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000,
                                 b"[" * 33 + b"]" * 33, b'"\\ud800"', b'{"k": ["ok", "\\udfff"]}', b'{"\\ud83d": 1}',
                                 b'"\xed\xa0\x80"', b"NaN", b"[Infinity]", b"[1e400]", b"-1e999", b"\xff\xfe",
                                 b"1" * 5000])
def test_json_a_caller_writes_is_refused_not_crashed_on(raw):
    assert code_of(untrusted.loads, raw) == "malformed_json"
    assert code_of(untrusted.loads, raw, what="cursor", code="invalid_cursor") == "invalid_cursor"


def test_sane_json_passes_including_real_astral_characters():
    assert untrusted.loads('{"name": "\\ud83d\\ude00 店", "deep": ' + "[" * 31 + "]" * 31 + "}") == {
        "name": "\U0001F600 店", "deep": json.loads("[" * 31 + "]" * 31)}


# ---- times at the edge of the calendar ----------------------------------------------------------

BASE = {"name": "10 off", "kind": "cash_off", "value": 1000, "valid_days_after_claim": 30}


@pytest.mark.parametrize("value", EDGES)
@pytest.mark.parametrize("field", ["valid_from", "valid_until", "claim_starts_at", "claim_ends_at"])
def test_coupon_times_outside_the_window_are_refused(field, value):
    body = {**BASE, field: value}
    if field.startswith("valid"):
        body = {**body, "valid_days_after_claim": None, "valid_until": body.get("valid_until", "2026-12-01T00:00:00Z")}
    assert code_of(rules.template, body, "t", now=NOW) == f"invalid_{field}"


def test_the_window_is_2000_to_ten_years_ahead():
    ok = rules.template({**BASE, "valid_days_after_claim": None, "valid_from": "2000-01-01T00:00:00Z",
                         "valid_until": "2036-11-01T00:00:00+08:00"}, "t", now=NOW)
    assert ok.valid_until == datetime(2036, 10, 31, 16, tzinfo=timezone.utc)
    assert rules.validity(ok, NOW)[1] + timedelta(days=3650) < datetime(2100, 1, 1, tzinfo=timezone.utc)


def test_a_valid_until_in_the_past_is_refused():
    body = {**BASE, "valid_days_after_claim": None, "valid_until": "2026-11-11T01:59:59Z"}
    assert code_of(rules.template, body, "t", now=NOW) == "invalid_valid_until"


@pytest.mark.parametrize("days", [0, 3651, True, 1.5, "30"])
def test_valid_days_after_claim_is_bounded(days):
    assert code_of(rules.template, {**BASE, "valid_days_after_claim": days}, "t", now=NOW) == \
        "invalid_valid_days_after_claim"


def _campaign(**changes) -> dict:
    out = {"name": "n", "message": {"medium": "mp_subscribe", "template_id": "T"},
           "schedule": {"at": "2026-11-12T10:00:00+08:00"}}
    out.update(changes)
    return out


@pytest.mark.parametrize("value", EDGES + ["9999-12-31T23:59:59"])
def test_campaign_times_outside_the_window_are_refused(value):
    spec = lambda body: c.spec(body, brand_timezone="Asia/Shanghai", now=NOW)        # noqa: E731
    if not value.startswith(("0", "1")):     # times before now are "at_in_past" for schedule.at
        assert code_of(spec, _campaign(schedule={"at": value})) == "invalid_at"
    assert code_of(spec, _campaign(audience={"joined_after": value})) == "invalid_joined_after"
    assert code_of(spec, _campaign(audience={"joined_before": value})) == "invalid_joined_before"


def test_a_naive_time_read_in_a_far_east_zone_cannot_overflow():
    body = _campaign(schedule={"at": "9999-12-31T23:59:59", "timezone": "Pacific/Kiritimati"})
    assert code_of(c.spec, body, brand_timezone="Asia/Shanghai", now=NOW) == "invalid_at"


# ---- Unicode digits -----------------------------------------------------------------------------

@pytest.mark.parametrize("expression", ["0 ٢ * * ? *", "0 ² * * ? *", "0 10 ²L * ? *", "0 10 ? * ²L *",
                                        "0 10 ? * ٢L *", "0 10 ? * ٢#1 *", "0 10 ٢W * ? *", "0/² 10 * * ? *",
                                        "0/٢ 10 * * ? *", "0 10 * * ? ٢٠٣٠", "0 10 ? * frı *", "0 10 ? * ５ *"])
def test_cron_fields_take_ascii_digits_only(expression):
    assert code_of(c.parse_cron, expression) == "invalid_cron"


@pytest.mark.parametrize("value", ["٠٢:٣٠", "0²:00", "22:0٠", "22:00\n"])
def test_quiet_hours_take_ascii_digits_only(value):
    assert code_of(c.quiet_hours, {"start": value, "end": "08:00"}) == "invalid_quiet_hours"


def test_a_member_code_with_unicode_digits_is_unknown_not_a_crash():
    secret = b"s" * 32
    code, _ = rules.member_code(secret, "m_abc", 600.0)
    member, step, mac = code.split(".")
    assert rules.read_member_code(secret, code, 600.0) == "m_abc"
    for fake in ("²", "١٠", "１０"):
        assert rules.read_member_code(secret, f"{member}.{fake}.{mac}", 600.0) is None


# ---- full matches -------------------------------------------------------------------------------

def _wechat(**oa) -> dict:
    return {"oa": {"app_id": "wxabc123", "app_secret": "s", "token": "tok123", "encoding_aes_key": "a" * 43, **oa}}


@pytest.mark.parametrize("call, args", [
    (ids.slug, ("acme\n", "brand_id")),
    (ids.scene, ("S1\n",)),
    (tenancy.wechat_config, (_wechat(token="tok123\n"),)),
    (tenancy.wechat_config, (_wechat(encoding_aes_key="a" * 43 + "\n"),)),
    (tenancy.wechat_config, (_wechat(app_id="wxabc123\n"),)),
    (tenancy.wechat_config, ({"wecom": {"corp_id": "ww1234\n", "secret": "s", "token": "tok123",
                                        "encoding_aes_key": "a" * 43}},)),
    (tenancy.guide, ({"guide_id": "g1", "store_id": "sz", "name": "Li", "wecom_user_id": "li\n"},)),
    (tenancy.store, ({"store_id": "sz\n", "name": "n"},)),
    (tenancy.channel, ({"scene": "S1\n"},)),
    (ids.identity, ("o_abc\n", "openid")),
])
def test_a_trailing_newline_never_passes_an_id_or_credential_pattern(call, args):
    assert code_of(call, *args).startswith("invalid_")


@pytest.mark.parametrize("params", [{"brand_id": "acme\n"}, {"brand_id": "x" * 41}, {"store_id": "SZ"},
                                    {"template_id": "t" * 65}, {"campaign_id": "c#1"}, {"redemption_id": ""}])
def test_path_ids_that_cannot_exist_are_not_found_before_any_read(params):
    with pytest.raises(NotFound):
        ids.path_params(params)
    ids.path_params({"brand_id": "acme", "store_id": "sz-1", "template_id": "tpl_abcdefghijkl"})


def test_a_deliveries_cursor_with_an_oversized_sort_key_is_not_a_cursor():
    from chalicelib.storage.campaigns import Ledger
    ledger = Ledger("acme", "cmp_x", "once")
    pk = ledger._shard_pk(3)
    good = "G#0123456789abcdef#0"
    assert ledger.valid_cursor({"shard": 3, "key": {"pk": {"S": pk}, "sk": {"S": good}}, "skip": 7})
    assert ledger.valid_cursor({"shard": 3, "key": None, "skip": 0})
    for sk in ("G#" + "a" * 1025 + "#0", "G#0123456789abcdef#0\n", "", "m_abcdefghijklmnop", "G#0123456789abcdeg#0",
               "G#0123456789abcdef#" + "1" * 7):
        assert not ledger.valid_cursor({"shard": 3, "key": {"pk": {"S": pk}, "sk": {"S": sk}}, "skip": 0})
    for skip in (-1, True, "1", 10_001):
        assert not ledger.valid_cursor({"shard": 3, "key": None, "skip": skip})
    assert not ledger.valid_cursor({"shard": 3, "key": None})            # a cursor of the old ledger
