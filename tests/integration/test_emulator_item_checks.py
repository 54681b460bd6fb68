"""A written item's type check (siyu_dev.item_checks: single-string attributes skipped) accepts and
refuses exactly what moto's check does, with the same error for the first bad attribute; and a put
of a bad number is still refused on the wire."""
from __future__ import annotations

import random
import uuid

import pytest

from tests.integration.test_emulator_item_copies import _random_value

BAD = [{"S": 5}, {"S": {"S": "x"}}, {"N": "abc"}, {"N": " 1"}, {"N": 1}, {"N": 1.5}, {"N": "inf"}, {"N": "1e999"},
       {"NULL": False}, {"NULL": "yes"}, {"M": {"k": {"N": "x"}}}, {"L": [{"S": 1}]}, {"S": None}, {"S": "ok", "N": "x"},
       {"N": "1" * 39}, {"SS": ["a"]}, "text", 5, None, {}]


def test_item_type_checks_are_moto_s(stack, table):
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.table import Table
    from siyu_dev import item_checks
    backend_table = next(b.tables[table] for account in dynamodb_backends.values() for b in account.values()
                         if table in b.tables)
    assert Table._validate_item_types is not item_checks.ORIGINALS["validate_item_types"]
    rng = random.Random(3)
    outcomes = set()
    for case in range(400):
        attrs = {"pk": {"S": "p"}, "sk": {"S": "s"}}
        names = [f"a{i}" for i in range(rng.randint(0, 8))] + rng.sample(["N", "S", "NULL", "pk"], 2)
        for name in names:
            attrs[name] = rng.choice(BAD) if rng.random() < 0.25 else _random_value(rng)
        results = []
        for check in (Table._validate_item_types, item_checks.ORIGINALS["validate_item_types"]):
            try:
                check(backend_table, attrs)
                results.append("accepted")
            except Exception as error:  # noqa: BLE001 - the refusal is what is compared
                results.append((type(error).__name__, str(error)))
        assert results[0] == results[1], (case, attrs)
        outcomes.add(results[0] == "accepted")
    assert outcomes == {True, False}


def test_a_bad_number_is_refused_on_the_wire(ddb, table):
    pk = f"CHECK#{uuid.uuid4().hex}"
    with pytest.raises(ddb.exceptions.ClientError) as refused:
        ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": "x"}, "name": {"S": "n"}, "n": {"N": "1e999"}})
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": "x"}}, ConsistentRead=True)


def test_assignments_near_the_size_limit_are_kept_or_refused_as_moto_s(stack):
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
    from siyu_dev import item_checks
    moto_setitem = item_checks.ORIGINALS["limited_setitem"]
    assert LimitedSizeDict.__setitem__ is not moto_setitem
    rng = random.Random(9)
    refused = kept = 0
    for case in range(150):
        steps = []
        for i in range(rng.randint(1, 12)):
            size = rng.choice([0, 3, 1000, 60_000, 150_000, 250_000])
            value = rng.choice([{"S": "x" * size}, {"S": "中" * (size // 3)}, {"N": "9" * min(size, 38) or "0"},
                                {"SS": ["y" * (size // 2)]}, {"M": {"k": {"S": "m" * size}}}, {"B": b"b" * size},
                                {"L": [{"S": "l" * (size // 2)}]}, {"BOOL": True}, {"NULL": True}])
            steps.append((rng.choice([f"a{i}", "again", "名前"]), DynamoType(value)))
        if case % 10 == 0:
            steps.append(("plain", "not a DynamoType"))
        outcomes = []
        for setitem in (LimitedSizeDict.__setitem__, moto_setitem):
            held, log = LimitedSizeDict(), []
            for name, value in steps:
                try:
                    setitem(held, name, value)
                    log.append("kept")
                except Exception as error:  # noqa: BLE001 - the refusal is what is compared
                    log.append(type(error).__name__)
            outcomes.append((log, list(held.items())))
        assert outcomes[0] == outcomes[1], case
        refused += "ItemSizeTooLarge" in outcomes[0][0]
        kept += "kept" in outcomes[0][0]
    assert refused > 10 and kept > 10


def test_value_sizes_are_moto_s(stack):
    from moto.dynamodb.models.dynamo_type import DynamoType
    from siyu_dev import item_checks
    assert DynamoType.size is not item_checks.ORIGINALS["size"]
    rng = random.Random(4)
    values = [_random_value(rng) for _ in range(300)] + [
        {"S": "中文🎟"}, {"S": ""}, {"N": "-1.5e3"}, {"N": 5}, {"S": b"bytes"}, {"S": True}, {"B": "AQ=="}]
    for value in values:
        typed = DynamoType(value)
        outcomes = []
        for size in (DynamoType.size, item_checks.ORIGINALS["size"]):
            try:
                outcomes.append(size(typed))
            except Exception as error:  # noqa: BLE001 - the refusal is what is compared
                outcomes.append(type(error).__name__)
        assert outcomes[0] == outcomes[1], value
    surrogate = DynamoType({"S": "\ud800"})
    with pytest.raises(UnicodeEncodeError):
        surrogate.size()
    with pytest.raises(UnicodeEncodeError):
        item_checks.ORIGINALS["size"](surrogate)
