"""DynamoType's hash and equality (siyu_dev.key_lookups) answer as moto's do for every pair of values,
and items keyed by strings are found, overwritten and told apart as before."""
from __future__ import annotations

import itertools
import uuid

VALUES = [{"S": "a"}, {"S": "a"}, {"S": "b"}, {"S": ""}, {"S": "1"}, {"N": "1"}, {"N": "1.0"}, {"N": "01"},
          {"B": b"a"}, {"B": b"a"}, {"B": "a"}, {"B": b""}, {"BOOL": True}, {"NULL": True}, {"SS": ["a", "b"]},
          {"SS": ["b", "a"]}, {"NS": ["1", "1.0"]}, {"L": [{"S": "a"}]}, {"M": {"k": {"S": "a"}}}, {"S": "中文"}]


def test_hash_and_equality_are_moto_s(stack):
    from moto.dynamodb.models.dynamo_type import DynamoType
    from siyu_dev import key_lookups
    assert DynamoType.__hash__ is not key_lookups.ORIGINALS["hash"]
    typed = [DynamoType(v) for v in VALUES]
    for value in typed:
        try:
            expected = ("hash", key_lookups.ORIGINALS["hash"](value))
        except TypeError as unhashable:                 # lists and maps: moto's TypeError either way
            expected = ("unhashable", str(unhashable))
        try:
            got = ("hash", hash(value))
        except TypeError as unhashable:
            got = ("unhashable", str(unhashable))
        assert got == expected, value.to_json()
    equal = 0
    for a, b in itertools.product(typed, repeat=2):
        assert (a == b) is key_lookups.ORIGINALS["eq"](a, b), (a.to_json(), b.to_json())
        assert (a != b) is key_lookups.ORIGINALS["ne"](a, b), (a.to_json(), b.to_json())
        equal += a == b
    assert equal > len(typed)                           # some distinct objects were equal
    for other in ("a", None):
        for method in ("eq", "ne"):
            mine, moto = [], []
            for fn, out in ((getattr(DynamoType, f"__{method}__"), mine), (key_lookups.ORIGINALS[method], moto)):
                try:
                    out.append(fn(typed[0], other))
                except AttributeError as error:
                    out.append(("refused", str(error)))
            assert mine == moto


def test_string_keyed_items_are_found_and_overwritten(ddb, table):
    pk = f"KEYS#{uuid.uuid4().hex}"
    for sk, n in (("x", "1"), ("y", "2"), ("x", "3")):
        ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": sk}, "n": {"N": n}})
    found = ddb.query(TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": pk}},
                      ConsistentRead=True)["Items"]
    assert [(i["sk"]["S"], i["n"]["N"]) for i in found] == [("x", "3"), ("y", "2")]
    got = ddb.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": "y"}}, ConsistentRead=True)["Item"]
    assert got["n"] == {"N": "2"}


def test_values_are_built_as_moto_builds_them(stack):
    import random
    from moto.dynamodb.models.dynamo_type import DynamoType
    from siyu_dev import key_lookups
    from tests.integration.test_emulator_item_copies import _random_value
    assert DynamoType.__init__ is not key_lookups.ORIGINALS["init"]
    rng = random.Random(8)
    values = VALUES + [_random_value(rng) for _ in range(300)] + [
        {"S": "a", "N": "1"}, {}, {"L": []}, {"M": {}}, {"S": None}, DynamoType({"S": "x"}), DynamoType({"L": [{"N": "1"}]})]
    for value in values:
        built = []
        for init in (DynamoType.__init__, key_lookups.ORIGINALS["init"]):
            typed = DynamoType.__new__(DynamoType)
            try:
                init(typed, value)
                built.append((list(vars(typed)), repr(typed.to_json()), typed.type, repr(typed.value)))
            except Exception as error:  # noqa: BLE001 - the refusal is what is compared
                built.append((type(error).__name__, str(error)))
        assert built[0] == built[1], value
