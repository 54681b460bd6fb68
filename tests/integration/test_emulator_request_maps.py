"""A request's maps of attribute values (siyu_dev.moto_speedups' map parser) parse exactly as moto's
own parser parses them: the same values, types and key order, and the same refusal for a malformed
one, for every request that carries items, keys or expression values."""
from __future__ import annotations

import pytest

from tests.integration.test_emulator_speedups import ITEM, parsed_request

WIRE = {k: v for k, v in ITEM.items() if k not in ("b", "bs", "l")}
ODD = [{"S": None}, {"S": "a", "N": "1"}, {"S": 5}, {"NULL": False}, {"BOOL": "yes"}, {"SS": ["a", 1]},
       {"M": {"k": {"S": None}}}, {"L": [{"S": "x"}, {"B": "AQ=="}]}, {"B": "AP8="}, {"BS": ["AQ=="]}, {},
       {"X": "1"}, "text", None, {"L": "x"}, {"M": []}, [], 5]


def _requests():
    key = {"pk": {"S": "a"}, "sk": {"S": "x"}}
    yield "PutItem", {"TableName": "t", "Item": {**key, **WIRE, "中文": {"S": "值"}}}
    yield "GetItem", {"TableName": "t", "Key": key}
    yield "BatchGetItem", {"RequestItems": {"t": {"Keys": [key, {"pk": {"S": "b"}, "sk": {"S": "y"}}]}}}
    yield "TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": "t", "Item": {**key, "l": {"L": [{"N": "1"}]}, "b": {"B": "AP8="}},
                 "ConditionExpression": "attribute_not_exists (#0)", "ExpressionAttributeNames": {"#0": "pk"}}},
        {"Update": {"TableName": "t", "Key": key, "UpdateExpression": "SET #1 = :1 ADD #0 :2",
                    "ExpressionAttributeNames": {"#0": "n", "#1": "k"},
                    "ExpressionAttributeValues": {":1": {"S": "v"}, ":2": {"N": "1"}, ":3": {"BS": ["AQ=="]}}}},
        {"ConditionCheck": {"TableName": "t", "Key": key, "ConditionExpression": "attribute_exists(pk)"}},
        {"Delete": {"TableName": "t", "Key": {"pk": {"S": "c"}, "sk": {"S": "z"}}}}]}
    yield "Query", {"TableName": "t", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "a"}},
                    "ExclusiveStartKey": key}
    for odd in ODD:
        yield "PutItem", {"TableName": "t", "Item": {**key, "odd": odd, "after": {"S": "x"}}}
        yield "UpdateItem", {"TableName": "t", "Key": key, "UpdateExpression": "SET #a = :v",
                             "ExpressionAttributeNames": {"#a": "a"}, "ExpressionAttributeValues": {":v": odd}}
    for malformed in ("text", None, [], [{"S": "a"}], 5):
        yield "PutItem", {"TableName": "t", "Item": malformed}
        yield "GetItem", {"TableName": "t", "Key": malformed}


def test_request_maps_parse_as_moto_parses_them(stack):
    from moto.core.parse import BaseJSONParser
    from moto.core.utils import get_service_model
    from siyu_dev import moto_speedups
    model = get_service_model("dynamodb")

    def parsed(action, body):
        return parsed_request(model, action, body)

    patched = BaseJSONParser._parse_map, BaseJSONParser._parse_structure
    assert patched[0] is not moto_speedups.ORIGINALS["parse_map"]
    refused = 0
    for action, body in _requests():
        fast = parsed(action, body)
        BaseJSONParser._parse_map = moto_speedups.ORIGINALS["parse_map"]
        BaseJSONParser._parse_structure = moto_speedups.ORIGINALS["parse_structure"]
        try:
            slow = parsed(action, body)
        finally:
            BaseJSONParser._parse_map, BaseJSONParser._parse_structure = patched
        assert repr(fast) == repr(slow), (action, body)        # the same values, types and key order
        refused += fast[0] == "raised" if isinstance(fast, tuple) else 0
    assert refused > 3


def test_an_update_expression_s_clauses_are_moto_s_every_time(ddb, table):
    """The handlers' question "which names and values does this expression use" (remembered per text)
    gets moto's walk's answer, for texts seen before or not, and a name left unused is still refused."""
    import uuid
    from moto.dynamodb.parsing import ast_nodes
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    from siyu_dev import moto_speedups
    kinds = [[ast_nodes.ExpressionAttributeName], [ast_nodes.ExpressionAttributeValue],
             [ast_nodes.UpdateExpressionAddClause], [ast_nodes.UpdateExpressionSetAction, ast_nodes.UpdateExpressionRemoveAction]]
    texts = ["SET #1 = :1 ADD #0 :2", "SET #a = if_not_exists(#a, :a0), #b = list_append(#b, :l) REMOVE #p0, x",
             "ADD #c :minus", "SET a.b[1] = :v DELETE #s :set"]
    for text in texts:
        for _ in range(2):
            tree = UpdateExpressionParser.make(text)
            for types in kinds:
                mine = tree.find_clauses(types)
                moto = moto_speedups.ORIGINALS["find_clauses"](tree, types)
                assert [id(n) for n in mine] == [id(n) for n in moto] and mine == moto, (text, types)
                mine.append("a caller's own list")
    key = {"pk": {"S": f"CLAUSE#{uuid.uuid4().hex}"}, "sk": {"S": "x"}}
    for _ in range(2):
        with pytest.raises(ddb.exceptions.ClientError) as refused:
            ddb.update_item(TableName=table, Key=key, UpdateExpression="ADD #c :minus",
                            ExpressionAttributeNames={"#c": "credits", "#unused": "x"},
                            ExpressionAttributeValues={":minus": {"N": "-1"}})
        assert "unused in expressions" in refused.value.response["Error"]["Message"]
