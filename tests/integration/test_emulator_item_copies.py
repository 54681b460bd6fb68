"""An item's deep copy (siyu_dev.item_copies) is moto's: the same values, the same sharing inside the
copy (a value held twice is copied once and held twice), nothing mutable shared with the original,
and a transaction refused midway leaves every item as it was."""
from __future__ import annotations

import copy
import random
import uuid

import pytest


@pytest.fixture
def table(scratch_table) -> str:
    """Written through moto's backend directly: a scratch table, not the main one (conftest.scratch_table)."""
    return scratch_table


def _walk(obj, seen: dict, mutable: set):
    """The copy as data: types, values, and which DynamoType / list / dict objects recur."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    if isinstance(obj, (DynamoType, Item, list, dict)):
        if id(obj) in seen:
            return ("again", seen[id(obj)])
        seen[id(obj)] = len(seen)
        mutable.add(id(obj))
    if isinstance(obj, Item):
        return ("item", type(obj.attrs).__name__, _walk(obj.hash_key, seen, mutable),
                _walk(obj.range_key, seen, mutable),
                [(k, _walk(v, seen, mutable)) for k, v in obj.attrs.items()], sorted(vars(obj)))
    if isinstance(obj, DynamoType):
        return ("dynamo", type(obj).__name__, obj.type, _walk(obj.value, seen, mutable), sorted(vars(obj)))
    if isinstance(obj, list):
        return ("list", [_walk(v, seen, mutable) for v in obj])
    if isinstance(obj, dict):
        return ("dict", [(k, _walk(v, seen, mutable)) for k, v in obj.items()])
    return ("plain", type(obj).__name__, obj)


def _random_value(rng: random.Random, depth: int = 0) -> dict:
    kinds = ["S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS"] + (["L", "M"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "S":
        return {"S": rng.choice(["", "x", "text" * rng.randint(1, 5)])}
    if kind == "N":
        return {"N": str(rng.randint(-5, 10**6))}
    if kind == "B":
        return {"B": bytes(rng.randrange(256) for _ in range(rng.randint(0, 4)))}
    if kind == "BOOL":
        return {"BOOL": rng.random() < 0.5}
    if kind == "NULL":
        return {"NULL": True}
    if kind in ("SS", "NS"):
        return {kind: [str(i) for i in range(rng.randint(1, 3))]}
    if kind == "BS":
        return {"BS": [bytes([i]) for i in range(rng.randint(1, 3))]}
    if kind == "L":
        return {"L": [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]}
    return {"M": {f"k{i}": _random_value(rng, depth + 1) for i in range(rng.randint(0, 3))}}


def test_item_copies_are_moto_s(stack):
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from siyu_dev import item_copies
    assert Item.__deepcopy__ is not item_copies.ORIGINALS["item"]
    patched = Item.__deepcopy__, DynamoType.__deepcopy__
    rng = random.Random(11)
    for case in range(200):
        item = Item(DynamoType({"S": f"h{case}"}), DynamoType({"S": "r"}) if case % 3 else None,
                    {f"a{i}": _random_value(rng) for i in range(rng.randint(0, 8))})
        if item.attrs and case % 4 == 0:            # one value held twice (if_not_exists hands it over)
            name = next(iter(item.attrs))
            dict.__setitem__(item.attrs, "alias", item.attrs[name])
        if case % 5 == 0:
            item.extra = "dropped by moto's copy"
        copies = []
        for deepcopy_item, deepcopy_type in (patched, (item_copies.ORIGINALS["item"],
                                                        item_copies.ORIGINALS["dynamo_type"])):
            Item.__deepcopy__, DynamoType.__deepcopy__ = deepcopy_item, deepcopy_type
            try:
                copied = copy.deepcopy(item)
                alone = copy.deepcopy(item.attrs[next(iter(item.attrs))]) if item.attrs else None
            finally:
                Item.__deepcopy__, DynamoType.__deepcopy__ = patched
            mutable_copy, mutable_original = set(), set()
            _walk(item, {}, mutable_original)
            shape = _walk(copied, {}, mutable_copy)
            assert not mutable_copy & mutable_original, case      # nothing mutable shared with the original
            copies.append((shape, _walk(alone, {}, set()), copied.to_json()))
        assert copies[0] == copies[1], case
    assert Item.__deepcopy__ is not item_copies.ORIGINALS["item"]


def test_a_refused_transaction_leaves_updated_items_as_they_were(ddb, table):
    key = lambda pk: {"pk": {"S": pk}, "sk": {"S": "x"}}       # noqa: E731
    a, b = f"COPY#{uuid.uuid4().hex}", f"COPY#{uuid.uuid4().hex}"
    ddb.put_item(TableName=table, Item={**key(a), "n": {"N": "1"}, "l": {"L": [{"M": {"x": {"SS": ["a"]}}}]}})
    ddb.put_item(TableName=table, Item={**key(b), "s": {"S": "text"}})
    before = [ddb.get_item(TableName=table, Key=key(pk), ConsistentRead=True)["Item"] for pk in (a, b)]
    with pytest.raises(ddb.exceptions.ClientError):     # the second update fails once the first is applied
        ddb.transact_write_items(TransactItems=[
            {"Update": {"TableName": table, "Key": key(a), "UpdateExpression": "ADD #n :one SET #l = :l",
                        "ExpressionAttributeNames": {"#n": "n", "#l": "l"},
                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":l": {"L": []}}}},
            {"Update": {"TableName": table, "Key": key(b), "UpdateExpression": "ADD #s :one",
                        "ExpressionAttributeNames": {"#s": "s"}, "ExpressionAttributeValues": {":one": {"N": "1"}}}}])
    assert [ddb.get_item(TableName=table, Key=key(pk), ConsistentRead=True)["Item"] for pk in (a, b)] == before
