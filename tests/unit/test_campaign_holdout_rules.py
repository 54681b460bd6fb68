"""The holdout and attribution window of a campaign spec (domain.campaigns), and the stats view's
held-out count (domain.campaign_runs)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib.domain import campaigns as rules
from chalicelib.errors import BadRequest

NOW = datetime(2025, 3, 1, 2, 0, tzinfo=timezone.utc)


def spec(**body):
    return rules.spec({"message": {"template_id": "T"}, **body}, brand_timezone="Asia/Shanghai", now=NOW)


def test_defaults_are_a_5_percent_holdout_and_7_days_of_attribution_and_survive_storage():
    s = spec()
    assert s.audience.holdout_percent == 5 and s.attribution_days == 7
    again = rules.Spec.from_json(s.to_json())
    assert again == s
    t = spec(audience={"holdout_percent": 0}, attribution_days=30)
    assert rules.Spec.from_json(t.to_json()).audience.holdout_percent == 0
    assert rules.Spec.from_json(t.to_json()).attribution_days == 30


def test_a_campaign_stored_before_the_holdout_existed_has_none():
    import json
    data = json.loads(spec().to_json())
    del data["audience"]["holdout_percent"], data["attribution_days"]
    old = rules.Spec.from_json(json.dumps(data))
    assert old.audience.holdout_percent == 0 and old.attribution_days == 7


@pytest.mark.parametrize("body,code", [
    ({"audience": {"holdout_percent": 50.5}}, "invalid_holdout_percent"),
    ({"audience": {"holdout_percent": -1}}, "invalid_holdout_percent"),
    ({"audience": {"holdout_percent": True}}, "invalid_holdout_percent"),
    ({"audience": {"holdout_percent": "5"}}, "invalid_holdout_percent"),
    ({"attribution_days": 0}, "invalid_attribution_days"),
    ({"attribution_days": 31}, "invalid_attribution_days"),
    ({"attribution_days": 7.5}, "invalid_attribution_days"),
    ({"attribution_days": True}, "invalid_attribution_days"),
], ids=["holdout-over-50", "holdout-negative", "holdout-bool", "holdout-text", "days-0", "days-31", "days-fraction",
        "days-bool"])
def test_out_of_range_values_are_refused(body, code):
    with pytest.raises(BadRequest) as refused:
        spec(**body)
    assert refused.value.code == code


def test_the_holdout_is_deterministic_independent_of_the_sample_and_near_its_percent():
    members = [f"m_{i:05d}" for i in range(20_000)]
    held = {m for m in members if rules.held_out("cmp_a", m, 5)}
    assert held == {m for m in members if rules.held_out("cmp_a", m, 5)}              # same every time
    assert 900 <= len(held) <= 1100                                                  # 5 % of 20,000 ± 10 %
    assert held != {m for m in members if rules.held_out("cmp_b", m, 5)}              # per campaign
    sampled = {m for m in members if rules.in_sample("cmp_a", m, 5)}
    assert len(held & sampled) < 200                                                 # another salt than the sample
    assert not any(rules.held_out("cmp_a", m, 0) for m in members)


def test_the_stats_view_counts_the_held_out_as_done():
    view = rules.stats_view(10, {"sent": 6, "held_out": 2, "skipped:no_credit": 2})
    assert view["held_out"] == 2 and view["done"] == 10 and view["sent"] == 6
