"""The key-size check's size of a value (siyu_dev.key_limits._size: strings and numbers measured
directly) is moto's DynamoType size for every value, at and around the limits, and 0 where moto's
size fails."""
from __future__ import annotations


def test_key_value_sizes_are_moto_s(stack):
    from moto.dynamodb.models.dynamo_type import DynamoType
    from siyu_dev import key_limits

    def moto_size(value):
        try:
            return DynamoType(value).size() if isinstance(value, dict) else 0
        except Exception:  # noqa: BLE001 - the check's own rule: no size
            return 0

    texts = ["", "a", "中文", "🎟", "x" * 1024, "é" * 512, "é" * 513, "\ud800", "a\x00b", "中" * 683]
    values = [{kind: text} for kind in ("S", "B", "N") for text in texts]
    values += [{"N": "-12.50"}, {"B": b"\x00\xff"}, {"S": 5}, {"S": None}, {"SS": ["a", "b"]}, {"L": [{"S": "a"}]},
               {"M": {"k": {"S": "v"}}}, {"S": "a", "N": "1"}, {}, "text", None, 7, {"BOOL": True}, {"NULL": True}]
    sizes = [key_limits._size(v) for v in values]
    assert sizes == [moto_size(v) for v in values]
    assert max(sizes) > key_limits.RANGE_KEY_MAX_LENGTH         # values over the limit were measured too
