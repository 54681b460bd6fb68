"""domain.guide_tasks: the task body, the chunks WeCom is asked for, and each customer in exactly one bucket."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.domain import guide_tasks as rules
from chalicelib.errors import BadRequest

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=timezone.utc)


def body(**fields) -> dict:
    return {"name": "tasting", "guide_ids": ["g1"], "message": {"text": "hi"},
            "send_at": "2026-06-01T10:00:00", "due_at": "2026-06-03T10:00:00", **fields}


def test_a_task_reads_times_in_its_zone_and_round_trips():
    spec = rules.spec(body(audience={"tags_any": ["vip"]}), brand_timezone="Asia/Shanghai", now=NOW)
    assert (spec.send_at, spec.due_at) == ("2026-06-01T02:00:00Z", "2026-06-03T02:00:00Z")
    assert rules.TaskSpec.from_json(spec.to_json()) == spec
    assert rules.schedule_expression(spec.send_at, spec.timezone) == "at(2026-06-01T10:00:00)"
    assert spec.wecom_body("li", ["wm_1"]) == {"chat_type": "single", "sender": "li", "external_userid": ["wm_1"],
                                               "text": {"content": "hi"}}


@pytest.mark.parametrize("fields, code", [
    ({"due_at": "2026-07-05T10:00:00"}, "invalid_due_at"),          # more than 30 days: WeCom forgets
    ({"due_at": "2026-06-01T10:05:00"}, "invalid_due_at"),
    ({"store_ids": ["sz"]}, "missing_guides"),
    ({"message": {"text": " "}}, "invalid_message_text"),
    ({"message": {"miniprogram": {"title": "t"}}}, "invalid_message_miniprogram_appid"),
    ({"audience": {"sample_percent": 5}}, "invalid_audience"),
])
def test_bad_bodies(fields, code):
    with pytest.raises(BadRequest) as err:
        rules.spec(body(**fields), brand_timezone="Asia/Shanghai", now=NOW)
    assert err.value.code == code


def test_chunks_hold_at_most_ten_thousand_and_fit_an_item():
    ids = [f"wm{n:030d}" for n in range(25_001)]
    chunks = rules.chunks(list(reversed(ids)) + ids[:5])            # duplicates and order do not matter
    assert [len(c) for c in chunks] == [rules.MAX_PER_CALL] * 2 + [5_001]
    assert sum(chunks, []) == sorted(ids)
    long = [f"wm{n:0100d}" for n in range(5_000)]
    assert all(len("\n".join(c)) <= rules.MAX_CHUNK_CHARS for c in rules.chunks(long))


def test_every_customer_lands_in_exactly_one_bucket():
    targeted = ["a", "b", "c", "d", "e", "f"]
    result = rules.chunk_result(targeted, refused_at_creation=["e"], guide_status=2, send_list=[
        {"external_userid": "a", "status": 1}, {"external_userid": "b", "status": 3},
        {"external_userid": "c", "status": 2}, {"external_userid": "d", "status": 0},
        {"external_userid": "zz", "status": 1}])                       # not ours: ignored
    assert result.confirmed and result.sent_ids == ["a"]
    assert result.buckets == {"sent": 1, "capped": 1, "not_contact": 2, "unconfirmed": 2}
    assert sum(result.buckets.values()) == len(targeted)
    assert rules.figures(3, 2, result.buckets)["execution_rate"] == 0.6667
    assert rules.figures(0, 0, {})["execution_rate"] is None
    # a fail_list too long to keep: whoever WeCom's send list leaves out was refused
    refused = rules.refused_text([f"wm{n:030d}" for n in range(2_000)])
    assert refused == rules.ALL_ABSENT
    assert rules.chunk_result(["a", "b"], [refused], 0, [{"external_userid": "a", "status": 0}]).buckets == {
        "sent": 0, "capped": 0, "not_contact": 1, "unconfirmed": 1}


def test_the_cap_day_is_the_brands():
    late = datetime(2026, 6, 1, 17, 0, tzinfo=timezone.utc)        # 01:00 the next day in Shanghai
    assert rules.cap_day(late, "Asia/Shanghai") == "2026-06-02"
    assert rules.cap_day(late - timedelta(hours=2), "Asia/Shanghai") == "2026-06-01"
