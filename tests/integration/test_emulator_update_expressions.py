"""The emulator parses each UpdateExpression text once (siyu_dev.emulator.parse_update_expression):
the same text applied again, to other items, with other values, in transactions and alone, still
answers as DynamoDB does, and a text that does not parse is refused every time."""
from __future__ import annotations

import uuid

import pytest

EXPRESSION = "ADD #n :one SET #k = :k, #l = list_append(if_not_exists(#l, :empty), :l)"
NAMES = {"#n": "n", "#k": "k", "#l": "l"}


def update(table: str, pk: str, k: str, entry: str) -> dict:
    return {"TableName": table, "Key": {"pk": {"S": pk}, "sk": {"S": "x"}}, "UpdateExpression": EXPRESSION,
            "ExpressionAttributeNames": NAMES,
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":k": {"S": k}, ":empty": {"L": []},
                                          ":l": {"L": [{"S": entry}]}}}


def read(ddb, table: str, pk: str) -> dict:
    item = ddb.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": "x"}}, ConsistentRead=True)["Item"]
    return {"n": item["n"]["N"], "k": item["k"]["S"], "l": [e["S"] for e in item["l"]["L"]]}


def test_one_expression_text_reused_on_new_and_existing_items_with_other_values(ddb, table):
    a, b = f"EMU#{uuid.uuid4().hex}", f"EMU#{uuid.uuid4().hex}"
    ddb.update_item(**update(table, a, "first", "a1"))
    ddb.transact_write_items(TransactItems=[{"Update": update(table, a, "second", "a2")},
                                            {"Update": update(table, b, "other", "b1")}])
    ddb.update_item(**update(table, a, "third", "a3"))
    assert read(ddb, table, a) == {"n": "3", "k": "third", "l": ["a1", "a2", "a3"]}
    assert read(ddb, table, b) == {"n": "1", "k": "other", "l": ["b1"]}


def test_an_expression_that_does_not_parse_is_refused_every_time(ddb, table):
    pk = f"EMU#{uuid.uuid4().hex}"
    for _ in range(2):
        with pytest.raises(ddb.exceptions.ClientError) as refused:
            ddb.update_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": "x"}}, UpdateExpression="SET = :v",
                            ExpressionAttributeValues={":v": {"S": "x"}})
        assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": "x"}}, ConsistentRead=True)
