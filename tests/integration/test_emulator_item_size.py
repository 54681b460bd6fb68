"""An item's 400 KB limit (siyu_dev.moto_speedups: a running total instead of moto's sum on each
attribute) refuses exactly the items moto refuses, at the same attribute, and keeps what moto keeps."""
from __future__ import annotations

import random
import uuid

import pytest


def build(init, attrs: dict):
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    item = Item.__new__(Item)
    try:
        init(item, DynamoType({"S": "h"}), DynamoType({"S": "r"}), attrs)
    except Exception as err:  # noqa: BLE001 - the refusal itself is what is compared
        return ("refused", type(err).__name__)
    return ("kept", type(item.attrs).__name__, item.to_json())


def test_items_near_the_limit_are_kept_or_refused_as_moto_keeps_or_refuses_them(stack):
    from siyu_dev import moto_speedups
    from moto.dynamodb.models.dynamo_type import Item
    moto_init = moto_speedups.ORIGINALS["item_init"]
    assert Item.__init__ is not moto_init          # the shortcut is what the emulator runs
    rng = random.Random(7)
    refused = kept = 0
    for case in range(60):
        attrs = {}
        for i in range(rng.randint(1, 12)):
            size = rng.choice([10, 1000, 40_000, 100_000, 200_000])
            attrs[f"a{i}"] = rng.choice([{"S": "x" * size}, {"N": str(size)}, {"SS": ["y" * (size // 4), "z"]},
                                         {"M": {"k": {"S": "m" * size}, "n": {"N": "1"}}},
                                         {"L": [{"S": "l" * (size // 2)}, {"BOOL": True}]}])
        ours, moto = build(Item.__init__, attrs), build(moto_init, attrs)
        assert ours == moto, case
        refused += ours[0] == "refused"
        kept += ours[0] == "kept"
    assert refused > 5 and kept > 5                 # both sides of the limit were exercised


def test_a_put_over_the_limit_is_refused_on_the_wire_and_writes_nothing(ddb, table):
    pk = f"SIZE#{uuid.uuid4().hex}"
    item = {"pk": {"S": pk}, "sk": {"S": "x"}, "a": {"S": "x" * 300_000}, "b": {"S": "y" * 150_000}}
    with pytest.raises(ddb.exceptions.ClientError) as refused:
        ddb.put_item(TableName=table, Item=item)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "Item size has exceeded the maximum allowed size" in refused.value.response["Error"]["Message"]
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": "x"}}, ConsistentRead=True)
    del item["b"]
    ddb.put_item(TableName=table, Item=item)
    got = ddb.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": "x"}}, ConsistentRead=True)["Item"]
    assert got == item
