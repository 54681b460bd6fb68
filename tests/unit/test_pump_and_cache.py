import pytest

from chalicelib.cache import TTLCache
from chalicelib.resources import STREAMS
from siyu_dev.pump import delivered, matches


def _record(event: str, **image) -> dict:
    return {"eventName": event, "dynamodb": {"NewImage": {k: {"S": v} for k, v in image.items()}}}


def test_outbox_filters_select_inserted_outbox_items_and_coupons_that_announce_themselves():
    spec = STREAMS[0]
    assert delivered(spec, _record("INSERT", kind="outbox", pk="OUT#1"))
    assert delivered(spec, _record("INSERT", kind="coupon", event_id="ev_abc"))
    assert not delivered(spec, _record("INSERT", kind="member"))
    assert not delivered(spec, _record("MODIFY", kind="outbox"))
    assert not delivered(spec, _record("MODIFY", kind="coupon", event_id="ev_abc"))        # a redemption
    assert not delivered(spec, _record("INSERT", kind="coupon"))           # a campaign's: its group announces it
    assert not delivered(spec, _record("INSERT", kind="coupon", event_id="xev_abc"))


def test_prefix_rules_match_strings_only():
    assert matches({"a": [{"prefix": "ev_"}, "x"]}, {"a": "x"})
    assert not matches({"a": [{"prefix": "ev_"}]}, {"a": 5})
    with pytest.raises(ValueError):
        matches({"a": [{"suffix": "x"}]}, {"a": "x"})


def test_ttl_cache_reloads_after_expiry_and_does_not_cache_misses():
    now = [0.0]
    cache = TTLCache(10, clock=lambda: now[0])
    loads = []
    assert cache.get_or_load("k", lambda: loads.append(1) or "v") == "v"
    assert cache.get_or_load("k", lambda: loads.append(1) or "v2") == "v"
    now[0] = 11
    assert cache.get_or_load("k", lambda: loads.append(1) or "v3") == "v3"
    assert cache.get_or_load("missing", lambda: None) is None
    assert cache.get_or_load("missing", lambda: "found") == "found"
    assert len(loads) == 2


def test_shipped_trimmed_botocore_models_match_the_pinned_botocore():
    import json
    from siyu_dev.trim_botocore_model import KEEP, OUT, trimmed
    for service, operations in KEEP.items():
        version, model = trimmed(service, operations)
        shipped = json.loads((OUT / service / version / "service-2.json").read_text())
        assert shipped == json.loads(json.dumps(model)), f"regenerate: python -m siyu_dev.trim_botocore_model"


def test_ssm_client_uses_the_trimmed_model():
    import os
    os.environ.setdefault("AWS_DEFAULT_REGION", "cn-north-1")
    from chalicelib import aws
    assert sorted(aws.client("ssm").meta.service_model.operation_names) == ["DeleteParameter", "GetParameter",
                                                                             "PutParameter"]
