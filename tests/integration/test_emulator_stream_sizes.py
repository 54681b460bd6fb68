"""A stream record's SizeBytes (siyu_dev.stream_sizes) is moto's: the same JSON text as moto's dump for
records of every attribute type, non-ASCII text, odd numbers and times, and a record written through
the emulator carries it."""
from __future__ import annotations

import datetime
import json
import random
import uuid

import pytest

from tests.integration.test_emulator_item_copies import _random_value


@pytest.fixture
def table(scratch_table) -> str:
    """Written through moto's backend directly: a scratch table, not the main one (conftest.scratch_table)."""
    return scratch_table


def _records(rng: random.Random):
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.table import StreamRecord

    class Table:
        hash_key_attr, range_key_attr = "pk", "sk"

    texts = ["plain", "中文 和 emoji 🎟", "quote \" back\\slash \n newline \t tab", "\u2028\u2029", "\x00\x1f"]
    for case in range(300):
        attrs = {"pk": {"S": rng.choice(texts) + str(case)}, "sk": {"S": "x"}}
        attrs.update({f"a{i}": _random_value(rng) for i in range(rng.randint(0, 8))})
        if case % 3 == 0:
            attrs["text"] = {"S": rng.choice(texts)}
        if case % 7 == 0:
            attrs["n"] = {"N": rng.choice(["1e10", "-0.000001", "12345678901234567890", "0"])}
        new = Item(DynamoType(attrs["pk"]), DynamoType(attrs["sk"]), attrs)
        old = Item(DynamoType(attrs["pk"]), DynamoType(attrs["sk"]), {**attrs, "old": {"S": "x"}}) if case % 2 else None
        view = rng.choice(["NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY"])
        record = StreamRecord(Table, view, "MODIFY" if old else "INSERT", old, new, case).record["dynamodb"]
        if case % 5 == 0:       # times with and without microseconds, far and near
            record["ApproximateCreationDateTime"] = rng.choice([
                datetime.datetime(2026, 1, 1), datetime.datetime(1999, 12, 31, 23, 59, 59, 999999),
                datetime.datetime(2026, 11, 30, 21, 0, 0, 1)])
        yield record


def test_stream_sizes_are_moto_s(stack):
    from moto.dynamodb.models import table
    from siyu_dev import stream_sizes
    moto_dump = stream_sizes.ORIGINALS["dynamo_json_dump"]
    assert table.dynamo_json_dump is stream_sizes.stream_json_dump and moto_dump is not table.dynamo_json_dump
    plain = refused = 0
    for record in _records(random.Random(5)):
        assert stream_sizes.stream_json_dump(record) == moto_dump(record)
        try:
            json.dumps({k: v for k, v in record.items() if k != "ApproximateCreationDateTime"})
            plain += 1
        except TypeError:
            refused += 1
    assert plain > 50 and refused > 50          # both ways were taken
    assert stream_sizes.stream_json_dump({"no": "time"}) == moto_dump({"no": "time"})


def test_a_written_item_s_record_has_moto_s_size(ddb, table, stack):
    from moto.dynamodb.models import dynamodb_backends
    from siyu_dev import stream_sizes
    from siyu_dev.emulator import DYNAMODB_LOCK
    backend = next(b for account in dynamodb_backends.values() for b in account.values() if table in b.tables)
    shard = backend.get_table(table).stream_shard
    pk = f"SIZE#{uuid.uuid4().hex}"
    with DYNAMODB_LOCK:
        before = len(shard.items)
    ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": "x"}, "t": {"S": "中文"}, "b": {"B": b"\x00"}})
    ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": "x"}, "t": {"S": "plain"}})
    with DYNAMODB_LOCK:
        records = [r.to_json()["dynamodb"] for r in shard.items[before:]]
    mine = [r for r in records if r["Keys"]["pk"] == {"S": pk}]
    assert len(mine) == 2
    for record in mine:
        expected = dict(record, SizeBytes=1)
        assert record["SizeBytes"] == len(stream_sizes.ORIGINALS["dynamo_json_dump"](expected))
