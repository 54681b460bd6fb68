"""Campaign rules: validation, quiet hours across midnight and DST, EventBridge cron, the state
machine, sampling, audience, WeChat answer classification, subscribe-message callbacks."""
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from chalicelib.domain import campaigns as c
from chalicelib.errors import BadRequest, Conflict
from chalicelib.wechat.messages import parse_body

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "wechat-samples"   # provenance: SOURCES.json there
NOW = datetime(2025, 3, 1, 2, 0, tzinfo=timezone.utc)        # 10:00 in Shanghai
SH = "Asia/Shanghai"
NY = "America/New_York"


def body(**changes) -> dict:
    out = {"name": "today's special", "message": {"medium": "mp_subscribe", "template_id": "TPL1",
                                                  "data": {"thing1": "10 off"}},
           "schedule": {"at": "2025-03-02T10:00:00+08:00"}}
    out.update(changes)
    return out


def refused(code: str, b: dict, now: datetime = NOW) -> None:
    with pytest.raises(BadRequest) as err:
        c.spec(b, brand_timezone=SH, now=now)
    assert err.value.code == code, err.value.message


# ---- validation and defaults -------------------------------------------------------------------

def test_minimal_campaign_gets_sensible_defaults():
    s = c.spec({"message": {"template_id": "TPL1"}}, brand_timezone=SH, now=NOW)
    assert s.message.medium == "mp_subscribe"
    assert s.audience == c.Audience()                                  # everyone, no sampling
    assert s.schedule.kind == "at" and s.schedule.timezone == SH
    assert s.schedule.at == "2025-03-01T02:01:00Z"                     # the next whole minute
    assert s.limits == c.Limits() and s.quiet_hours is None and s.coupon_template_id is None


def test_at_without_offset_is_read_in_the_campaign_time_zone_and_expressed_there():
    s = c.spec(body(schedule={"at": "2025-03-02T10:00:00"}), brand_timezone=SH, now=NOW)
    assert s.schedule.at == "2025-03-02T02:00:00Z"
    assert s.schedule.expression() == "at(2025-03-02T10:00:00)"
    ny = c.spec(body(schedule={"at": "2025-03-02T10:00:00Z", "timezone": NY}), brand_timezone=SH, now=NOW)
    assert ny.schedule.expression() == "at(2025-03-02T05:00:00)" and ny.schedule.timezone == NY


@pytest.mark.parametrize("code,b", [
    ("at_in_past", body(schedule={"at": "2025-03-01T09:59:00+08:00"})),
    ("invalid_at", body(schedule={"at": "tomorrow at ten"})),
    ("invalid_schedule", body(schedule={"at": "2025-03-02T10:00:00Z", "cron": "0 10 * * ? *"})),
    ("invalid_timezone", body(schedule={"at": "2025-03-02T10:00:00Z", "timezone": "Mars/Olympus"})),
    ("invalid_timezone", body(schedule={"at": "2025-03-02T10:00:00Z", "timezone": "../etc/passwd"})),
    ("unknown_medium", body(message={"medium": "sms", "template_id": "T"})),
    ("missing_template_id", body(message={"medium": "oa_template"})),
    ("missing_text", body(message={"medium": "oa_custom"})),
    ("invalid_data", body(message={"template_id": "T", "data": {"thing1": ["x"]}})),
    ("invalid_quiet_hours", body(quiet_hours={"start": "22:00", "end": "8:00"})),
    ("invalid_quiet_hours", body(quiet_hours={"start": "24:00", "end": "08:00"})),
    ("invalid_quiet_hours", body(quiet_hours={"start": "08:00", "end": "08:00"})),
    ("invalid_sample_percent", body(audience={"sample_percent": 0})),
    ("invalid_sample_percent", body(audience={"sample_percent": 101})),
    ("invalid_sample_percent", body(audience={"sample_percent": True})),
    ("invalid_audience", body(audience={"joined_after": "2025-02-01", "joined_before": "2025-01-01"})),
    ("invalid_tags_any", body(audience={"tags_any": "vip"})),
    ("invalid_frequency_cap_per_day", body(limits={"frequency_cap_per_day": 0})),
    ("invalid_per_second", body(limits={"per_second": 2.5})),
    ("invalid_name", body(name="")),
    ("invalid_message", body(message="hello")),
])
def test_impossible_campaigns_are_refused_with_a_reason(code, b):
    refused(code, b)


def test_message_data_is_normalised_to_wechat_shape_and_oa_custom_takes_text():
    s = c.spec(body(message={"template_id": "T", "data": {"thing1": "10 off", "amount2": {"value": 12}}}),
               brand_timezone=SH, now=NOW)
    assert s.message.data == {"thing1": {"value": "10 off"}, "amount2": {"value": "12"}}
    custom = c.spec(body(message={"medium": "oa_custom", "text": "hello"}), brand_timezone=SH, now=NOW)
    assert custom.message.text == "hello" and custom.message.template_id is None


def test_spec_round_trips_through_storage_json():
    s = c.spec(body(audience={"tags_any": ["vip", "sz"], "store_ids": ["sz"], "joined_after": "2024-01-01",
                              "sample_percent": 20},
                    quiet_hours={"start": "22:00", "end": "08:00"}, limits={"per_second": 50},
                    coupon_template_id="tpl_x"), brand_timezone=SH, now=NOW)
    assert c.Spec.from_json(s.to_json()) == s
    assert s.audience.joined_after == "2023-12-31T16:00:00Z"             # midnight in Shanghai
    assert s.view()["quiet_hours"] == {"start": "22:00", "end": "08:00"}


# ---- quiet hours -------------------------------------------------------------------------------

QUIET = c.QuietHours(time(22, 0), time(8, 0))


def sh(y, mo, d, h, mi) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(SH)).astimezone(timezone.utc)


def test_outside_quiet_hours_sends_now():
    assert c.next_allowed(sh(2025, 3, 1, 10, 0), SH, QUIET) == sh(2025, 3, 1, 10, 0)
    assert c.next_allowed(sh(2025, 3, 1, 21, 59), SH, QUIET) == sh(2025, 3, 1, 21, 59)
    assert c.next_allowed(sh(2025, 3, 1, 8, 0), SH, QUIET) == sh(2025, 3, 1, 8, 0)
    assert c.next_allowed(sh(2025, 3, 1, 3, 0), SH, None) == sh(2025, 3, 1, 3, 0)


def test_quiet_hours_across_midnight_defer_to_the_morning():
    assert c.next_allowed(sh(2025, 3, 1, 22, 0), SH, QUIET) == sh(2025, 3, 2, 8, 0)      # evening: tomorrow
    assert c.next_allowed(sh(2025, 3, 1, 23, 30), SH, QUIET) == sh(2025, 3, 2, 8, 0)
    assert c.next_allowed(sh(2025, 3, 2, 0, 10), SH, QUIET) == sh(2025, 3, 2, 8, 0)      # after midnight: today
    assert c.next_allowed(sh(2025, 3, 2, 7, 59), SH, QUIET) == sh(2025, 3, 2, 8, 0)
    # year end, month end
    assert c.next_allowed(sh(2025, 12, 31, 23, 0), SH, QUIET) == sh(2026, 1, 1, 8, 0)


def test_quiet_hours_within_one_day():
    lunch = c.QuietHours(time(12, 0), time(13, 30))
    assert c.next_allowed(sh(2025, 3, 1, 12, 15), SH, lunch) == sh(2025, 3, 1, 13, 30)
    assert c.next_allowed(sh(2025, 3, 1, 13, 30), SH, lunch) == sh(2025, 3, 1, 13, 30)


def test_quiet_hours_follow_the_brand_time_zone_not_utc():
    # 23:00 UTC is 07:00 next morning in Shanghai (quiet) but 18:00/19:00 in New York (not quiet)
    moment = datetime(2025, 3, 1, 23, 0, tzinfo=timezone.utc)
    assert c.next_allowed(moment, SH, QUIET) == sh(2025, 3, 2, 8, 0)
    assert c.next_allowed(moment, NY, QUIET) == moment


def test_quiet_hours_on_dst_days_use_local_wall_time():
    ny = ZoneInfo(NY)
    # 2025-03-09: New York springs forward at 02:00 -> 03:00. Quiet until 08:00 EDT = 12:00 UTC.
    before = datetime(2025, 3, 9, 1, 0, tzinfo=ny)                               # 06:00 UTC, EST
    assert c.next_allowed(before, NY, QUIET) == datetime(2025, 3, 9, 8, 0, tzinfo=ny)
    assert c.next_allowed(before, NY, QUIET) == datetime(2025, 3, 9, 12, 0, tzinfo=timezone.utc)
    # 2025-11-02: falls back at 02:00 -> 01:00. Quiet until 08:00 EST = 13:00 UTC.
    late = datetime(2025, 11, 1, 23, 0, tzinfo=ny)
    assert c.next_allowed(late, NY, QUIET) == datetime(2025, 11, 2, 13, 0, tzinfo=timezone.utc)


def test_quiet_hours_ending_inside_the_dst_gap_end_when_the_clocks_jump():
    ny = ZoneInfo(NY)
    early = c.QuietHours(time(22, 0), time(2, 30))        # 02:30 does not exist on 2025-03-09
    moment = datetime(2025, 3, 9, 1, 45, tzinfo=ny)       # 06:45 UTC
    # the clocks jump 01:59:59 EST -> 03:00 EDT at 07:00 UTC: that is the first allowed minute
    assert c.next_allowed(moment, NY, early) == datetime(2025, 3, 9, 7, 0, tzinfo=timezone.utc)
    assert c.next_allowed(moment, NY, early).astimezone(ny).strftime("%H:%M") == "03:00"


# ---- cron --------------------------------------------------------------------------------------

@pytest.mark.parametrize("expression", [
    "0 10 * * ? *", "cron(0 10 * * ? *)", "0/15 8-20 ? * MON-FRI *", "30 9 L * ? *", "0 12 15W * ? 2025-2030",
    "0 20 ? * 6L *", "0 10 ? * 3#2 *", "5,35 * * JAN,JUL ? *", "0 0 1 */3 ? *", "0 10 ? * L *",
])
def test_eventbridge_cron_expressions_are_accepted(expression):
    assert len(c.parse_cron(expression)) == 6


@pytest.mark.parametrize("expression", [
    "0 10 * * *",               # five fields (Unix cron)
    "0 10 * * * *",             # neither day field is '?'
    "0 10 ? * ? *",             # both are
    "60 10 * * ? *", "0 24 * * ? *", "0 10 32 * ? *", "0 10 * 13 ? *", "0 10 ? * 8 *", "0 10 * * ? 1969",
    "0 10 * FOO ? *", "0/0 10 * * ? *", "? 10 * * ? *", "0 10 5-1 * ? *", "0 10 * * ? * *", "", 42,
])
def test_malformed_cron_expressions_are_refused(expression):
    with pytest.raises(BadRequest) as err:
        c.parse_cron(expression)
    assert err.value.code == "invalid_cron"


def test_a_cron_that_never_fires_is_refused_and_a_valid_one_is_kept():
    refused("invalid_cron", body(schedule={"cron": "0 10 30 2 ? *"}))                 # 30 February
    refused("invalid_cron", body(schedule={"cron": "0 10 * * ? 2020"}))               # in the past
    s = c.spec(body(schedule={"cron": "cron(0 10 * * ? *)"}), brand_timezone=SH, now=NOW)
    assert s.schedule.recurring and s.schedule.expression() == "cron(0 10 * * ? *)"


def test_cron_matching_and_next_fire_in_local_time():
    daily = c.parse_cron("0 10 * * ? *")
    assert c.cron_matches(daily, datetime(2025, 3, 1, 10, 0))
    assert not c.cron_matches(daily, datetime(2025, 3, 1, 10, 1))
    assert c.next_cron_fire(daily, NOW, SH) == sh(2025, 3, 2, 10, 0)      # NOW is 10:00 exactly: next day
    weekdays = c.parse_cron("0/15 8-20 ? * MON-FRI *")
    assert c.cron_matches(weekdays, datetime(2025, 3, 3, 8, 45))           # Monday
    assert not c.cron_matches(weekdays, datetime(2025, 3, 2, 8, 45))       # Sunday
    assert c.cron_matches(c.parse_cron("30 9 L * ? *"), datetime(2024, 2, 29, 9, 30))
    assert c.cron_matches(c.parse_cron("0 20 ? * 6L *"), datetime(2025, 2, 28, 20, 0))   # last Friday
    assert c.cron_matches(c.parse_cron("0 10 ? * 3#2 *"), datetime(2025, 3, 11, 10, 0))  # 2nd Tuesday
    assert c.cron_matches(c.parse_cron("0 12 15W * ? *"), datetime(2025, 3, 14, 12, 0))  # 15th is a Saturday
    assert c.next_cron_fire(c.parse_cron("0 10 1 1 ? 2031"), NOW, SH) == sh(2031, 1, 1, 10, 0)


def test_cron_in_a_dst_gap_is_skipped_that_day():
    at_0230 = c.parse_cron("30 2 * * ? *")
    after = datetime(2025, 3, 8, 12, 0, tzinfo=timezone.utc)
    assert c.next_cron_fire(at_0230, after, NY) == datetime(2025, 3, 10, 2, 30, tzinfo=ZoneInfo(NY))


def test_fire_ids_make_a_one_time_campaign_one_run_and_a_recurring_one_a_run_per_fire():
    once = c.Schedule(kind="at", timezone=SH, at="2025-03-02T02:00:00Z")
    assert c.run_id_for(once, "2025-03-02T02:00:00Z") == c.run_id_for(once, None) == c.ONCE
    daily = c.Schedule(kind="cron", timezone=SH, cron="0 10 * * ? *")
    assert c.run_id_for(daily, "2025-03-02T02:00:00Z") == c.run_id_for(daily, "2025-03-02T02:00:37+00:00")
    assert c.run_id_for(daily, "2025-03-02T02:00:00Z") != c.run_id_for(daily, "2025-03-03T02:00:00Z")


# ---- state machine -----------------------------------------------------------------------------

def test_pause_resume_cancel_transitions():
    assert c.transition("scheduled", "pause", started=False) == "paused"
    assert c.transition("running", "pause", started=True) == "paused"
    assert c.transition("paused", "resume", started=True) == "running"
    assert c.transition("paused", "resume", started=False) == "scheduled"
    for state in ("scheduled", "running", "paused"):
        assert c.transition(state, "cancel", started=False) == "cancelled"


@pytest.mark.parametrize("state,action", [
    ("completed", "pause"), ("cancelled", "pause"), ("paused", "pause"), ("scheduled", "resume"),
    ("running", "resume"), ("completed", "resume"), ("completed", "cancel"), ("cancelled", "cancel"),
])
def test_impossible_transitions_are_409(state, action):
    with pytest.raises(Conflict) as err:
        c.transition(state, action, started=True)
    assert err.value.status == 409 and err.value.code == "invalid_transition"


def test_what_a_fire_does_in_each_state_and_what_a_finished_run_leaves():
    assert c.fire_decision("scheduled", None, c.ONCE) == "start"
    assert c.fire_decision("running", c.ONCE, c.ONCE) == "continue"          # duplicate fire
    assert c.fire_decision("running", "2025-03-01T02:00Z", "2025-03-02T02:00Z") == "drop"   # overlap
    assert c.fire_decision("paused", None, c.ONCE) == "park"
    assert c.fire_decision("cancelled", None, c.ONCE) == "drop"
    assert c.fire_decision("completed", c.ONCE, c.ONCE) == "drop"
    assert c.after_run("running", recurring=False) == "completed"
    assert c.after_run("running", recurring=True) == "scheduled"
    assert c.after_run("paused", recurring=False) == "completed"
    assert c.after_run("cancelled", recurring=False) == "cancelled"


# ---- audience and sampling ---------------------------------------------------------------------

def member(mid="m_1", tags=(), stores=(), joined="2025-02-01T00:00:00Z") -> c.MemberFacts:
    return c.MemberFacts(mid, joined, frozenset(tags), frozenset(stores))


def test_audience_predicate():
    a = c.Audience(tags_any=("vip", "gold"), tags_all=("sz",), store_ids=("sz-1",),
                   joined_after="2025-01-01T00:00:00Z", joined_before="2025-03-01T00:00:00Z")
    assert c.eligible("cmp", a, member(tags={"vip", "sz"}, stores={"sz-1"}))
    assert not c.eligible("cmp", a, member(tags={"sz"}, stores={"sz-1"}))                 # no tag of tags_any
    assert not c.eligible("cmp", a, member(tags={"vip"}, stores={"sz-1"}))                # lacks a tags_all tag
    assert not c.eligible("cmp", a, member(tags={"vip", "sz"}, stores={"sh-1"}))          # other store
    assert not c.eligible("cmp", a, member(tags={"vip", "sz"}, stores={"sz-1"}, joined="2024-12-31T23:59:59Z"))
    assert c.eligible("cmp", a, member(tags={"vip", "sz"}, stores={"sz-1"}, joined="2025-01-01T00:00:00Z"))
    assert not c.eligible("cmp", a, member(tags={"vip", "sz"}, stores={"sz-1"}, joined="2025-03-01T00:00:00Z"))
    assert c.eligible("cmp", c.Audience(), member())


def test_sampling_is_deterministic_close_to_the_percentage_and_independent_per_campaign():
    ids = [f"m_{i:05d}" for i in range(20_000)]
    first = {m for m in ids if c.in_sample("cmp_a", m, 20)}
    assert first == {m for m in ids if c.in_sample("cmp_a", m, 20)}                 # same answer every time
    assert 0.18 < len(first) / len(ids) < 0.22
    other = {m for m in ids if c.in_sample("cmp_b", m, 20)}
    assert 0.02 < len(first & other) / len(ids) < 0.06                               # ~4%: independent draws
    assert {m for m in ids if c.in_sample("cmp_a", m, 10)} <= first                  # a smaller pilot is a subset
    assert all(c.in_sample("cmp_a", m, 100) for m in ids[:100])


# ---- delivery rules ----------------------------------------------------------------------------

def test_precheck_needs_an_openid_for_the_channel_and_an_oa_follower():
    mp_only = c.Recipient("m_1", mp_openid="o_mp")
    assert c.precheck("mp_subscribe", mp_only) is None
    assert c.precheck("oa_template", mp_only) == "no_openid"
    left = c.Recipient("m_2", oa_openid="o_oa", oa_subscribed=False)
    assert c.precheck("oa_template", left) == "unsubscribed" and c.precheck("oa_custom", left) == "unsubscribed"
    assert c.Recipient.unpack(left.pack()) == left and c.Recipient.unpack(mp_only.pack()) == mp_only


def test_frequency_day_is_the_brand_local_day_and_cap():
    late = datetime(2025, 3, 1, 17, 0, tzinfo=timezone.utc)      # 01:00 on 2 March in Shanghai
    assert c.frequency_day(late, SH) == "2025-03-02" and c.frequency_day(late, NY) == "2025-03-01"
    assert c.under_cap(1, 2) and not c.under_cap(2, 2) and c.under_cap(99, None)


@pytest.mark.parametrize("errcode,kind,reason", [
    (0, "sent", None), (None, "sent", None),
    (-1, "retry", "errcode_-1"), (45009, "retry", "errcode_45009"), (45011, "retry", "errcode_45011"),
    (40001, "token", "errcode_40001"), (42001, "token", "errcode_42001"),
    (43101, "skipped", "unsubscribed"), (40003, "skipped", "invalid_openid"), (45015, "skipped", "outside_48h"),
    (40037, "failed", "errcode_40037"), (47003, "failed", "errcode_47003"),
])
def test_wechat_answers_are_classified(errcode, kind, reason):
    assert c.classify(errcode) == c.Outcome(kind, reason)


def test_backoff_grows_and_is_capped():
    assert [c.backoff(n) for n in (1, 2, 3)] == [0.2, 0.4, 0.8] and c.backoff(10) == 2.0


def test_stats_view_lists_every_skip_reason_and_adds_up():
    view = c.stats_view(10, {"sent": 5, "skipped:no_credit": 3, "failed:errcode_40037": 1, "skipped:blocked": 1})
    assert view["sent"] == 5 and view["failed"] == 1 and view["done"] == 10
    assert view["skipped"]["no_credit"] == 3 and view["skipped"]["frequency_capped"] == 0
    assert set(c.SKIP_REASONS) <= set(view["skipped"]) and view["failed_reasons"] == {"errcode_40037": 1}


# ---- subscribe-message callbacks ---------------------------------------------------------------

def sample(name: str) -> dict:
    raw = (SAMPLES / name).read_text()
    if name.endswith(".json"):
        import json
        return json.loads(raw)["body"]
    return parse_body(raw.encode())


def test_popup_event_in_xml_with_repeated_list():
    got = c.subscription_changes(sample("oa_subscribe_msg_popup_event.xml"))
    assert got.accepted == ("VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc",)
    assert got.rejected == ("9nLIlbOQZC5Y89AZteFEux3WCXRRRG5Wfzkpssu4bLI",) and got.revoked == ()


def test_popup_event_in_json_with_list_as_array_or_single_object():
    array = c.subscription_changes(sample("mp_json_subscribe_msg_popup_array.json"))
    assert array.accepted == ("TEMPLATE_ID_1",) and array.rejected == ("TEMPLATE_ID_2",)
    single = c.subscription_changes(sample("mp_json_subscribe_msg_popup_single_object.json"))
    assert single.accepted == ("TEMPLATE_ID_1",) and single.rejected == ()


def test_popup_event_in_xml_with_a_single_list_element():
    msg = parse_body(b"<xml><FromUserName>o1</FromUserName><MsgType>event</MsgType>"
                     b"<Event>subscribe_msg_popup_event</Event><SubscribeMsgPopupEvent><List>"
                     b"<TemplateId>T1</TemplateId><SubscribeStatusString>accept</SubscribeStatusString>"
                     b"</List></SubscribeMsgPopupEvent></xml>")
    assert c.subscription_changes(msg).accepted == ("T1",)


def test_change_event_reject_revokes_and_accept_grants_nothing():
    got = c.subscription_changes(sample("oa_subscribe_msg_change_event.xml"))
    assert got.revoked == ("VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc",) and got.accepted == ()
    on = {"Event": "subscribe_msg_change_event", "List": {"TemplateId": "T", "SubscribeStatusString": "accept"}}
    assert c.subscription_changes(on) == c.SubscriptionChanges()


def test_subscription_request_from_the_mini_program():
    assert c.subscription_request({"accepted": ["A", "A", "B"], "rejected": ["C"]}) == c.SubscriptionChanges(
        ("A", "B"), ("C",))
    for bad, code in (({}, "missing_templates"), ({"accepted": "A"}, "invalid_accepted"),
                      ({"accepted": ["A"], "rejected": ["A"]}, "invalid_templates")):
        with pytest.raises(BadRequest) as err:
            c.subscription_request(bad)
        assert err.value.code == code


def test_now_default_schedule_is_never_in_the_past():
    s = c.spec({"message": {"template_id": "T"}}, brand_timezone=SH, now=NOW + timedelta(seconds=59))
    assert c.parse_instant(s.schedule.at) > NOW + timedelta(seconds=59)
