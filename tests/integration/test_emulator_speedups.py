"""The emulator's shortcuts through moto (siyu_dev.moto_speedups) answer exactly as moto does: an
update expression refused for its structure is refused every time, whatever passed before with the
same text; a condition parsed once decides by the values it names, not by the request it was first
parsed for; every attribute type reads back as written; and the answer's attribute values are the
bytes moto's own serializer writes."""
from __future__ import annotations

import json
import uuid

import pytest


def key(pk: str) -> dict:
    return {"pk": {"S": pk}, "sk": {"S": "x"}}


def get(ddb, table: str, pk: str) -> dict:
    return ddb.get_item(TableName=table, Key=key(pk), ConsistentRead=True).get("Item", {})


def refused_code(ddb, **request) -> str:
    with pytest.raises(ddb.exceptions.ClientError) as refused:
        ddb.update_item(**request)
    return refused.value.response["Error"]["Code"]


def test_a_structural_refusal_holds_after_the_same_text_passed(ddb, table):
    pk = f"EMU#{uuid.uuid4().hex}"
    text = "SET #a = :v, #b = :w"
    values = {":v": {"S": "1"}, ":w": {"S": "2"}}
    ddb.update_item(TableName=table, Key=key(pk), UpdateExpression=text,
                    ExpressionAttributeNames={"#a": "x", "#b": "y"}, ExpressionAttributeValues=values)
    for _ in range(2):      # the same text: two paths that are one attribute, then a key attribute
        assert refused_code(ddb, TableName=table, Key=key(pk), UpdateExpression=text,
                            ExpressionAttributeNames={"#a": "x", "#b": "x"},
                            ExpressionAttributeValues=values) == "ValidationException"
        assert refused_code(ddb, TableName=table, Key=key(pk), UpdateExpression=text,
                            ExpressionAttributeNames={"#a": "x", "#b": "pk"},
                            ExpressionAttributeValues=values) == "ValidationException"
        assert refused_code(ddb, TableName=table, Key=key(pk), UpdateExpression="SET #a = :v SET #b = :w",
                            ExpressionAttributeNames={"#a": "x", "#b": "y"},
                            ExpressionAttributeValues=values) == "ValidationException"
    assert get(ddb, table, pk) == {**key(pk), "x": {"S": "1"}, "y": {"S": "2"}}
    ddb.update_item(TableName=table, Key=key(pk), UpdateExpression=text,       # and passes again
                    ExpressionAttributeNames={"#a": "x", "#b": "y"},
                    ExpressionAttributeValues={":v": {"S": "3"}, ":w": {"S": "4"}})
    assert get(ddb, table, pk) == {**key(pk), "x": {"S": "3"}, "y": {"S": "4"}}


def claim(ddb, table: str, pk: str, mark: str, need: str, **extra) -> None:
    values = {":m": {"S": mark}, ":one": {"N": need}, ":minus": {"N": "-1"}, **extra}
    ddb.update_item(TableName=table, Key=key(pk), UpdateExpression="SET #m = :m ADD #c :minus",
                    ConditionExpression="attribute_not_exists(#m) AND #c >= :one",
                    ExpressionAttributeNames={"#m": "mark", "#c": "credits"}, ExpressionAttributeValues=values)


def test_a_condition_decides_by_the_values_it_names(ddb, table):
    a, b = f"EMU#{uuid.uuid4().hex}", f"EMU#{uuid.uuid4().hex}"
    for pk in (a, b):
        ddb.put_item(TableName=table, Item={**key(pk), "credits": {"N": "1"}})
    claim(ddb, table, a, "first", "1")
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        claim(ddb, table, a, "second", "1")           # marked already
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        claim(ddb, table, b, "first", "2")            # the same text, another :one
    assert get(ddb, table, b) == {**key(b), "credits": {"N": "1"}}
    claim(ddb, table, b, "other", "1")               # other values the condition does not name
    assert get(ddb, table, a)["mark"] == {"S": "first"} and get(ddb, table, b)["mark"] == {"S": "other"}
    assert get(ddb, table, b)["credits"] == {"N": "0"}
    c = f"EMU#{uuid.uuid4().hex}"
    ddb.put_item(TableName=table, Item={**key(c), "credits": {"N": "1"}})
    for _ in range(2):      # a value it names missing (moto answers 500 there), one unused: refused every time
        assert refused_code(ddb, TableName=table, Key=key(c), UpdateExpression="SET #m = :m",
                            ConditionExpression="attribute_not_exists(#m) AND #c >= :one",
                            ExpressionAttributeNames={"#m": "mark", "#c": "credits"},
                            ExpressionAttributeValues={":m": {"S": "x"}}) in ("ValidationException", "500")
        assert refused_code(ddb, TableName=table, Key=key(c), UpdateExpression="SET #m = :m",
                            ConditionExpression="attribute_not_exists(#m) AND #c >= :one",
                            ExpressionAttributeNames={"#m": "mark", "#c": "credits"},
                            ExpressionAttributeValues={":m": {"S": "x"}, ":one": {"N": "1"},
                                                       ":unused": {"N": "1"}}) == "ValidationException"
    assert get(ddb, table, c) == {**key(c), "credits": {"N": "1"}}


ITEM = {"s": {"S": "text"}, "empty": {"S": ""}, "n": {"N": "-12.5"}, "b": {"B": b"\x00\xffbytes"},
        "yes": {"BOOL": True}, "no": {"BOOL": False}, "null": {"NULL": True}, "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": [b"\x01", b"\x02"]},
        "l": {"L": [{"S": "x"}, {"N": "1"}, {"B": b"\x03"}, {"L": []}, {"M": {}}, {"NULL": True}]},
        "m": {"M": {"inner": {"M": {"deep": {"SS": ["z"]}, "list": {"L": [{"BOOL": False}]}}}, "n": {"N": "0"}}}}


def test_every_attribute_type_reads_back_as_written(ddb, table):
    pk = f"EMU#{uuid.uuid4().hex}"
    ddb.put_item(TableName=table, Item={**key(pk), **ITEM})
    expected = {**key(pk), **ITEM}
    assert get(ddb, table, pk) == expected
    batch = ddb.batch_get_item(RequestItems={table: {"Keys": [key(pk)], "ConsistentRead": True}})
    assert batch["Responses"][table] == [expected]
    found = ddb.query(TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": pk}},
                      ConsistentRead=True)["Items"]
    assert found == [expected]
    old = ddb.update_item(TableName=table, Key=key(pk), UpdateExpression="SET #s = :s",
                          ExpressionAttributeNames={"#s": "s"}, ExpressionAttributeValues={":s": {"S": "new"}},
                          ReturnValues="ALL_OLD")["Attributes"]
    assert old == expected


def test_attribute_values_are_written_as_moto_writes_them(stack):
    from moto.core.serialize import BaseJSONSerializer, JSONSerializer, XFormedAttributePicker
    from moto.core.utils import get_service_model
    from moto.dynamodb.responses import DynamoResult
    from siyu_dev import moto_speedups
    model = get_service_model("dynamodb")
    items = [{"pk": {"S": "a"}, "sk": {"S": "x"}, **{k: v for k, v in ITEM.items() if k not in ("b", "bs", "l")}},
             {"pk": {"S": "b"}, "sk": {"S": "y"}, "l": {"L": [{"S": "x"}, {"M": {"k": {"NS": ["1"]}}}]}},
             {"pk": {"S": "c"}, "sk": {"S": "z"}, "b": {"B": "AP8="}, "l": {"L": [{"B": "AQ=="}]}}]
    result = {"Responses": {"t": items}, "UnprocessedKeys": {}, "ConsumedCapacity": [{"CapacityUnits": 3,
                                                                                     "TableName": "t"}]}

    def body() -> str:
        serializer = JSONSerializer(operation_model=model.operation_model("BatchGetItem"), pretty_print=False,
                                    value_picker=XFormedAttributePicker(response_transformers={}))
        return serializer.serialize(DynamoResult(result).result)["body"]

    fast = body()
    patched = BaseJSONSerializer._serialize_type_structure
    BaseJSONSerializer._serialize_type_structure = moto_speedups.ORIGINALS["serialize_structure"]
    try:
        slow = body()
    finally:
        BaseJSONSerializer._serialize_type_structure = patched
    assert patched is not moto_speedups.ORIGINALS["serialize_structure"]
    assert fast == slow
    assert json.loads(fast)["Responses"]["t"][0]["ss"] == {"SS": ["a", "b"]}


def test_the_action_list_is_moto_s_and_follows_its_class(stack):
    from moto.core import responses
    from moto.dynamodb.responses import DynamoHandler
    from siyu_dev import moto_speedups
    original = moto_speedups.ORIGINALS["method_names_from_class"]
    assert responses.method_names_from_class is not original
    assert responses.method_names_from_class(DynamoHandler) == original(DynamoHandler)
    assert "update_item" in responses.method_names_from_class(DynamoHandler)

    class Handler(DynamoHandler):
        pass

    assert responses.method_names_from_class(Handler) == original(Handler)
    Handler.siyu_added_action = lambda self: None          # a method added after the first ask is seen
    assert "siyu_added_action" in responses.method_names_from_class(Handler)
    assert responses.method_names_from_class(Handler) == original(Handler)
    del Handler.siyu_added_action                           # and one removed is gone
    assert "siyu_added_action" not in responses.method_names_from_class(Handler)
    names = responses.method_names_from_class(Handler)
    names.append("not_an_action")                           # a caller's list is its own
    assert "not_an_action" not in responses.method_names_from_class(Handler)


def test_request_ids_have_moto_s_form_on_the_wire(ddb, table):
    import re
    from moto.core import responses
    ids = set()
    for _ in range(3):
        answer = ddb.get_item(TableName=table, Key=key(f"EMU#{uuid.uuid4().hex}"))
        rid = answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
        assert re.fullmatch(r"[A-Za-z0-9]{52}", rid)
        ids.add(rid)
    assert len(ids) == 3
    headers = {}
    rid = responses.gen_amzn_requestid_long(headers)
    assert headers == {"x-amzn-requestid": rid} and re.fullmatch(r"[A-Za-z0-9]{52}", rid)


def test_request_attribute_values_parse_as_moto_parses_them(stack):
    from moto.core.parse import BaseJSONParser
    from moto.core.utils import get_service_model
    from siyu_dev import moto_speedups
    model = get_service_model("dynamodb")
    wire = {k: v for k, v in ITEM.items() if k not in ("b", "bs", "l")}
    odd = [{"S": None}, {"S": "a", "N": "1"}, {"S": 5}, {"NULL": False}, {"BOOL": "yes"}, {"SS": ["a", 1]},
           {"M": {"k": {"S": None}}}, {"L": [{"S": "x"}, {"B": "AQ=="}]}, {"B": "AP8="}, {"BS": ["AQ=="]}, {},
           {"X": "1"}, "text", None, {"L": "x"}, {"M": []}]
    requests = [
        ("PutItem", {"TableName": "t", "Item": {"pk": {"S": "a"}, "sk": {"S": "x"}, **wire},
                     "ConditionExpression": "attribute_not_exists(pk)"}),
        ("TransactWriteItems", {"TransactItems": [
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "b"}, "sk": {"S": "y"}, "l": {"L": [{"N": "1"}]},
                                                "m": {"M": {"n": {"NULL": True}}}}}},
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "c"}, "sk": {"S": "z"}}, "UpdateExpression": "ADD #n :one",
                        "ExpressionAttributeNames": {"#n": "n"}, "ExpressionAttributeValues": {":one": {"N": "1"}}}}]}),
    ] + [("UpdateItem", {"TableName": "t", "Key": {"pk": {"S": "a"}, "sk": {"S": "x"}}, "UpdateExpression": "SET #a = :v",
                         "ExpressionAttributeNames": {"#a": "a"}, "ExpressionAttributeValues": {":v": v}}) for v in odd]

    def parsed(action, body):
        return parsed_request(model, action, body)

    for action, body in requests:
        fast = parsed(action, body)
        patched = BaseJSONParser._parse_structure
        BaseJSONParser._parse_structure = moto_speedups.ORIGINALS["parse_structure"]
        try:
            slow = parsed(action, body)
        finally:
            BaseJSONParser._parse_structure = patched
        assert patched is not moto_speedups.ORIGINALS["parse_structure"]
        assert fast == slow, action
        assert repr(fast) == repr(slow), action         # the same types and key order too
    assert parsed(*requests[0])["Item"]["ss"] == {"SS": ["a", "b"]}


def _shape(node):
    """A validated update tree as data: node types, children, and the values it resolved."""
    from moto.dynamodb.parsing.ast_nodes import Node
    if isinstance(node, Node):
        extra = {k: repr(v) for k, v in vars(node).items() if k not in ("children", "parent")}
        return type(node).__name__, extra, [_shape(c) for c in node.children or ()]
    return repr(node)


def test_update_validation_is_moto_s_pass_for_pass(ddb, table):
    """Every pass moto's validator runs, against the same trees with the shortcuts (structural passes
    remembered, passes with nothing to process skipped): the same validated tree or the same refusal,
    for items that exist or not, with values of the right type or not."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    from siyu_dev import moto_speedups
    pk = f"EMU#{uuid.uuid4().hex}"
    ddb.put_item(TableName=table, Item={**key(pk), "n": {"N": "3"}, "s": {"S": "text"}, "l": {"L": [{"N": "1"}]}})
    backend_table = next(b.tables[table] for account in dynamodb_backends.values() for b in account.values()
                         if table in b.tables)
    from moto.dynamodb.models.dynamo_type import DynamoType
    stored = backend_table.get_item(DynamoType({"S": pk}), DynamoType({"S": "x"}))
    assert stored is not None
    names = {"#n": "n", "#s": "s", "#l": "l", "#x": "x", "#k": "pk", "#e": ""}
    values = {":one": {"N": "1"}, ":t": {"S": "t"}, ":empty": {"S": ""}, ":l": {"L": [{"N": "2"}]}}
    texts = ["SET #n = :one ADD #x :one", "ADD #n :one, #x :one", "ADD #s :one", "SET #n = #n + :one",
             "SET #s = #s + :one", "SET #x = if_not_exists(#x, :one) + :one", "SET #l = list_append(#l, :l)",
             "REMOVE #x", "REMOVE #n, #s", "SET #k = :t", "SET #n = :one, #n = :t", "SET #n = :t SET #s = :t",
             "SET #x = #x + :one", "SET #x = :missing", "SET #e = :t", "ADD #n :one REMOVE #n", "SET #n = :empty"]
    outcomes = set()
    for text in texts:
        for item in (stored, None):
            results = []
            for validate in (validators.UpdateExpressionValidator.validate, moto_speedups.ORIGINALS["validate"]):
                for _ in range(2):          # the second time with what the first remembered
                    tree = UpdateExpressionParser.make(text)
                    validator = validators.UpdateExpressionValidator(tree, names, values, item, backend_table)
                    try:
                        results.append(("ok", _shape(validate(validator))))
                    except Exception as error:  # noqa: BLE001 - a refusal: the same one both ways
                        results.append(("refused", type(error).__name__, str(error)))
            assert all(r == results[-1] for r in results), (text, item is None, results)
            outcomes.add(results[0][0])
    assert outcomes == {"ok", "refused"}
    assert moto_speedups._IDLE["ADD #n :one, #x :one"]        # some passes were skipped on this text


def parsed_request(model, action: str, body: dict):
    """moto's JSON parse of a DynamoDB request body, or what it raised (so a shortcut must raise it too)."""
    from moto.core.parse import JSONParser
    parser = JSONParser(model.operation_model(action), map_type=dict)
    try:
        return parser.parse({"method": "POST", "values": {}, "headers": {}, "body": json.dumps(body).encode(),
                             "url_path": "/", "url_params": {}})
    except Exception as error:  # noqa: BLE001 - moto's parser refuses it: so must the shortcut
        return ("raised", type(error).__name__, str(error))
