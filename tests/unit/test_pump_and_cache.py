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
