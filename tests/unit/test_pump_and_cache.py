from chalicelib.cache import TTLCache
from chalicelib.resources import STREAMS
from siyu_dev.pump import matches


def test_outbox_filter_selects_only_inserted_outbox_items():
    pattern = STREAMS[0].filter_pattern
    outbox = {"eventName": "INSERT", "dynamodb": {"NewImage": {"kind": {"S": "outbox"}, "pk": {"S": "OUT#1"}}}}
    member = {"eventName": "INSERT", "dynamodb": {"NewImage": {"kind": {"S": "member"}}}}
    modify = {"eventName": "MODIFY", "dynamodb": {"NewImage": {"kind": {"S": "outbox"}}}}
    assert matches(pattern, outbox) and not matches(pattern, member) and not matches(pattern, modify)


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
