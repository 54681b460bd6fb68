"""Where moto spends a DynamoDB request's time without DynamoDB's semantics needing it, made cheaper.

Measured on the sender's hot requests (bench.throughput; tests/integration/test_emulator_speedups.py
holds each one to moto's own answer): a claim's conditional UpdateItem took ~11 ms of emulator CPU
and a BatchGetItem of 100 items ~180 ms, and the emulator applies DynamoDB requests one at a time,
so those figures bounded every campaign the local stack sends. Where that time went, and what is
done here instead (each the same answer, computed once or more directly):

- the update expression's validation (~60% of an UpdateItem): moto deep-copies the parsed tree with
  copy.deepcopy's generic machinery, then runs ten passes over it, each rebuilding its map of node
  types at every node (here: once per pass). Three of them (one SET/ADD/REMOVE
  clause each, no overlapping paths, no key attribute updated) read only the expression's structure,
  its attribute names and the table's key attributes, never the item or the values, and change
  nothing: once they pass for that (expression, names, keys) they pass again, so they are skipped
  for it. A pass that raises is never remembered (it raises again next time). The tree is cloned by
  a copier that knows a node is its type, children and parent (anything else: copy.deepcopy).
- the condition expression is parsed twice per request (the handler validates it, the backend
  applies it), from scratch every time. The parse reads the expression and the names and values it
  references only, so it is memoized on exactly those (the claim's mark and openid values differ on
  every request; `attribute_not_exists(#m) AND #c >= :one` does not read them).
- the answer's items go through moto's shape-driven serializer one attribute value at a time
  (~90% of a BatchGetItem). An attribute value of a plain type (S, N, BOOL, NULL, SS, NS and L/M of
  them) serializes to itself, so it is copied as it stands; binary values and anything unexpected
  take moto's path.
- which moto backend serves a host is looked up by listing moto's modules on disk for every request;
  the answer depends on the host alone, so it is remembered per host.

Then, on the claim's UpdateItem alone (~7 ms of emulator CPU; a cProfile of the emulator's handler
threads over 1,500 claims):
- every request lists its response class's methods with inspect.getmembers (~8% of a claim) to
  see whether the action is one; the list depends on the class's attributes only, so it is
  remembered per class for as long as no class on its MRO gains or loses an attribute.
- every answer's request id (52 characters) is drawn with one random.choice call each (~3%); it is
  drawn from the same alphabet by one random.choices call instead (same length and alphabet, from
  moto's own seedable generator: a seeded run stays reproducible, with other ids than moto's).

Then on a coupon claim's ~5-item TransactWriteItems (~13 ms of emulator CPU per claim):
- every item moto builds (each Put, each update's new image) checks the 400 KB limit on each
  attribute it adds by summing the sizes of all the attributes already in it: quadratic in the
  attributes (~15% of a claim). The sum only grows, so the first addition that would pass the limit
  is found with a running total: the same ItemSizeTooLarge at the same attribute, the same item.

Then (tests/integration/test_emulator_speedups.py compares each with moto's own code):
- a request's attribute values parse to themselves when plain (the serializer's shortcut, reversed):
  a 5-item transaction's parse ~0.24 -> ~0.12 ms.
- an update's validation skips the passes that find no node to process in its tree (which node types
  a tree holds depends on its text): an ADD-only update runs 3 of the 10 once its text has passed.
- a map of attribute values (an Item, a Key) parses its plain values the same way, without moto's
  two dispatches per attribute (tests/integration/test_emulator_request_maps.py).
- a parsed update expression's clauses of a kind are found once per text (test_emulator_request_maps.py).
"""
from __future__ import annotations

import copy
import functools
import re
import string

_PLAIN = (str, int, float, bool, type(None))
_STRUCTURAL = ("ActionCountValidator", "OverlappingPathsValidator", "UpdateHashRangeKeyValidator")
_PLACEHOLDER = re.compile(r"[#:][A-Za-z0-9_]+")
_installed = False
ORIGINALS: dict[str, object] = {}      # moto's own methods, for tests comparing answers


# -- the update expression's tree -------------------------------------------------------------------
def _clone_value(value, memo):
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is list:
        return [_clone_value(v, memo) for v in value]
    if getattr(kind, "__deepcopy__", None) is _node_deepcopy:
        return _node_deepcopy(value, memo)
    return copy.deepcopy(value, memo)


def _node_deepcopy(self, memo):
    """copy.deepcopy of an AST node, without the generic reduce/reconstruct per object: a node's state
    is its __dict__ (type name, children, parent; a few hold a plain value), copied with the same memo
    so the parent links point into the copy exactly as deepcopy would make them."""
    found = memo.get(id(self))
    if found is not None:
        return found
    clone = object.__new__(type(self))
    memo[id(self)] = clone
    state = clone.__dict__
    for name, value in self.__dict__.items():
        state[name] = _clone_value(value, memo)
    return clone


# id(tree) -> (tree, text): the trees emulator.parse_update_expression hands out (kept alive here, so
# an id is never reused while it is a key)
_TEXTS: dict[int, tuple[object, str]] = {}
_PASSED: set[tuple] = set()            # (expression, names, table keys) the structural passes accepted
_LIMIT = 65536
_IS_NODE: dict[type, bool] = {}
_IDLE: dict[str, frozenset] = {}        # expression text -> the passes with nothing to process in its tree


def remember_text(tree, text: str):
    """Called by the update-expression parse cache: which text `tree` was parsed from."""
    if len(_TEXTS) < _LIMIT:
        _TEXTS.setdefault(id(tree), (tree, text))
    return tree


def _install_validator() -> None:
    from moto.dynamodb.parsing import ast_nodes, validators
    ast_nodes.Node.__deepcopy__ = _node_deepcopy
    traverser = ast_nodes.DepthFirstTraverser
    node_type, recursive = ast_nodes.Node, traverser.traverse_node_recursively
    no_pre = traverser.pre_processing_of_child

    def traverse(self, root):
        """moto's traverse_node_recursively, with the node types it processes asked once per pass
        instead of once per node (each ask builds the pass's processing map anew)."""
        if type(self).traverse_node_recursively is not recursive or type(self).nodes_to_be_processed is not \
                traverser.nodes_to_be_processed:
            return recursive(self, root)
        wanted = self.nodes_to_be_processed()
        process = self.process
        # most passes keep moto's do-nothing hook before each child: not called at all then
        pre = None if type(self).pre_processing_of_child is no_pre else self.pre_processing_of_child
        is_wanted: dict[type, bool] = {}      # isinstance through ABCMeta, asked once per node class

        def visit(node, child_id=-1):
            kind = type(node)
            is_node = _IS_NODE.get(kind)
            if is_node is None:
                is_node = _IS_NODE[kind] = isinstance(node, node_type)
            if is_node:
                parent_node = node.parent
                if node.children is not None:
                    for i, child_node in enumerate(node.children):
                        if pre is not None:
                            pre(node, i)
                        visit(child_node, i)
                hit = is_wanted.get(kind)
                if hit is None:
                    hit = is_wanted[kind] = isinstance(node, wanted)
                if hit:
                    node = process(node)
                    node.parent = parent_node
                    if parent_node:
                        parent_node.children[child_id] = node
            return node

        return visit(root)

    traverser.traverse = traverse
    cls = validators.UpdateExpressionValidator
    original_init = cls.__init__
    ORIGINALS["validate"] = cls.validate

    def __init__(self, expression, expression_attribute_names, expression_attribute_values, item, table):
        known = _TEXTS.get(id(expression))
        self._structure_key = None if known is None or known[0] is not expression else (
            known[1], tuple(sorted((expression_attribute_names or {}).items())), tuple(table.table_key_attrs))
        original_init(self, expression, expression_attribute_names, expression_attribute_values, item, table)

    def validate(self):
        key = self._structure_key
        skip = key is not None and key in _PASSED
        idle = _idle_passes(key[0], self.node_to_validate, self.processors) if key is not None else ()
        n = self.node_to_validate
        for processor in self.processors:
            if skip and type(processor).__name__ in _STRUCTURAL:
                continue
            if type(processor) in idle:
                continue
            n = processor.traverse(n)
        if key is not None and not skip and len(_PASSED) < _LIMIT:
            _PASSED.add(key)          # every pass ran and none raised: the structural ones accept the key
        return n

    cls.__init__ = __init__
    cls.validate = validate
    made = (ast_nodes.DDBTypedValue, ast_nodes.NoneExistingPath)

    def _idle_passes(text, tree, processors) -> frozenset:
        """The passes that would find no node to process in a tree parsed from `text`: which node
        types a tree holds depends on its text alone, and the passes make no node but DDBTypedValue
        and NoneExistingPath (a pass that processes either is never idle). Such a pass keeps moto's
        do-nothing hook before each child, so its traversal only visits: skipped, the tree is the same."""
        known = _IDLE.get(text)
        if known is None:
            kinds, stack = set(made), [tree]
            while stack:
                node = stack.pop()
                if isinstance(node, node_type):
                    kinds.add(type(node))
                    stack.extend(node.children or ())
            known = frozenset(
                type(p) for p in processors
                if type(p).traverse is traverse and type(p).traverse_node_recursively is recursive
                and type(p).nodes_to_be_processed is traverser.nodes_to_be_processed
                and type(p).pre_processing_of_child is no_pre
                and not any(issubclass(kind, p.nodes_to_be_processed()) for kind in kinds))
            if len(_IDLE) < _LIMIT:
                _IDLE[text] = known
        return known


# -- the condition expression ------------------------------------------------------------------------
def _install_condition_cache() -> None:
    from moto.dynamodb import comparisons
    parser_cls = comparisons.ConditionExpressionParser
    original_parse = parser_cls.parse

    @functools.lru_cache(maxsize=4096)
    def parsed(expression: str, names: tuple, values: tuple):
        parser = parser_cls(expression, dict(names), {k: _thaw(v) for k, v in values})
        op = original_parse(parser)
        return op, tuple(parser.expr_attr_names_found), tuple(parser.expr_attr_values_found)

    def parse(self):
        expression = self.condition_expression
        names, values = self.expression_attribute_names, self.expression_attribute_values
        if not expression or not isinstance(expression, str):
            return original_parse(self)
        used = set(_PLACEHOLDER.findall(expression))
        try:
            key_names = tuple(sorted((k, v) for k, v in (names or {}).items() if k in used))
            key_values = tuple(sorted((k, _freeze(v)) for k, v in (values or {}).items() if k in used))
        except TypeError:                                  # a value that is not plain data: moto's way
            return original_parse(self)
        if any(not isinstance(v, str) for _k, v in key_names):
            return original_parse(self)
        try:
            op, names_found, values_found = parsed(expression, key_names, key_values)
        except Exception:  # noqa: BLE001 - refused (or read a placeholder not seen above): moto's answer
            return original_parse(self)
        self.expr_attr_names_found = list(names_found)
        self.expr_attr_values_found = list(values_found)
        return op

    parser_cls.parse = parse


def _freeze(value):
    if isinstance(value, dict):
        return ("d", tuple(sorted((k, _freeze(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("l", tuple(_freeze(v) for v in value))
    if isinstance(value, _PLAIN):
        return value
    raise TypeError(type(value).__name__)


def _thaw(value):
    if isinstance(value, tuple):
        kind, items = value
        return {k: _thaw(v) for k, v in items} if kind == "d" else [_thaw(v) for v in items]
    return value


# -- the answer's attribute values -------------------------------------------------------------------
_SCALAR = {"S": str, "N": str, "BOOL": bool, "NULL": bool}


def plain_attribute_value(value):
    """`value` (an AttributeValue in wire form) as moto's serializer would write it, or None when it
    holds anything but plain types (moto's path then)."""
    if type(value) is not dict or len(value) != 1:
        return None
    (kind, inner), = value.items()
    want = _SCALAR.get(kind)
    if want is not None:
        return {kind: inner} if type(inner) is want and (kind != "NULL" or inner is True) else None
    if kind in ("SS", "NS"):
        if type(inner) is list and all(type(v) is str for v in inner):
            return {kind: list(inner)}
        return None
    if kind == "L":
        if type(inner) is not list:
            return None
        out = [plain_attribute_value(v) for v in inner]
        return None if any(v is None for v in out) else {kind: out}
    if kind == "M":
        if type(inner) is not dict:
            return None
        out = {}
        for k, v in inner.items():
            plain = plain_attribute_value(v)
            if plain is None or type(k) is not str:
                return None
            out[k] = plain
        return {kind: out}
    return None


def _install_serializer() -> None:
    from moto.core import serialize
    cls = serialize.BaseJSONSerializer
    original = ORIGINALS["serialize_structure"] = cls._serialize_type_structure

    def _serialize_type_structure(self, serialized, value, shape, key):
        if key and shape.name == "AttributeValue" and not getattr(self._value_picker, "response_transformers", None):
            plain = plain_attribute_value(value)
            if plain is not None:
                self._default_serialize(serialized, plain, shape, key)
                return
        original(self, serialized, value, shape, key)

    cls._serialize_type_structure = _serialize_type_structure


def _install_parser() -> None:
    """The request's attribute values, parsed the way the answer's are serialized above: moto's JSON
    parser walks an AttributeValue's ten member shapes for every value (a transaction's five items:
    ~5% of it), and for a value of plain types (strings, numbers, booleans, NULL, SS, NS and L/M of
    them) that walk returns the value as it stands (strings and booleans parse to themselves, lists
    and maps member by member, in dicts: the parser's map type is dict here). Binary values (base64
    decoded by moto) and anything unexpected (a None, a second key, a wrong type) take moto's path."""
    from moto.core import parse
    cls = parse.BaseJSONParser
    original = ORIGINALS["parse_structure"] = cls._parse_structure

    def _parse_structure(self, shape, value):
        if shape.name == "AttributeValue" and self.MAP_TYPE is dict:
            plain = plain_attribute_value(value)
            if plain is not None:
                return plain
        return original(self, shape, value)

    cls._parse_structure = _parse_structure


def _install_map_parser() -> None:
    """An item's map of attribute values (Item, Key, ExpressionAttributeValues), parsed the way its
    values are above: moto's map parser dispatches twice per attribute (the name through its string
    handler, which JSON has none of, so the name stays as it is; the value through the structure
    parser); a coupon claim's 4-item transaction holds ~37 of them. A plain value is taken as above,
    anything else goes through moto's own value parse, in the same order."""
    from moto.core import parse
    cls = parse.BaseJSONParser
    original = ORIGINALS["parse_map"] = cls._parse_map

    def _parse_map(self, shape, value):
        value_shape = shape.value
        if (value_shape.name == "AttributeValue" and self.MAP_TYPE is dict and type(value) is dict
                and shape.key.type_name == "string" and getattr(self, "_parse_string", None) is None):
            parsed = {}
            for key, val in value.items():
                plain = plain_attribute_value(val)
                parsed[key] = plain if plain is not None else self._parse_shape(value_shape, val)
            return parsed
        return original(self, shape, value)

    cls._parse_map = _parse_map


_CLAUSES: dict[tuple, tuple] = {}       # (expression text, clause types) -> the tree's clauses of those types


def _install_clause_memo() -> None:
    """The clauses of a parsed update expression, found once per text: the handlers ask the tree which
    attribute names and values it uses (UpdateItem twice, TransactWriteItems once per Update), each
    time a recursive walk of the whole tree. Only the trees the parse cache hands out are asked here,
    and moto never changes one (its validator and the plans work on deep copies), so the answer for a
    text and a list of clause types stays what it was; each caller gets a list of its own."""
    from moto.dynamodb.parsing import ast_nodes
    original = ORIGINALS["find_clauses"] = ast_nodes.Node.find_clauses

    def find_clauses(self, clause_types):
        known = _TEXTS.get(id(self))
        if known is None or known[0] is not self:
            return original(self, clause_types)
        try:
            key = (known[1], tuple(clause_types))
            found = _CLAUSES.get(key)
        except TypeError:           # clause types that do not hash: moto's walk
            return original(self, clause_types)
        if found is None:
            found = tuple(original(self, clause_types))
            if len(_CLAUSES) < _LIMIT:
                _CLAUSES[key] = found
        return list(found)

    ast_nodes.Node.find_clauses = find_clauses


# -- which backend serves a host ---------------------------------------------------------------------
def _install_backend_lookup() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    original = DomainDispatcherApplication.get_backend_for_host

    def get_backend_for_host(self, host):
        memo = self.__dict__.setdefault("_siyu_backend_for_host", {})
        if host not in memo:
            memo[host] = original(self, host)
        return memo[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host


# -- the action's method names, the request id ------------------------------------------------------
_METHOD_NAMES: dict[type, tuple[tuple, list[str]]] = {}


def _install_request_shortcuts() -> None:
    from moto.core import responses
    original_names = ORIGINALS["method_names_from_class"] = responses.method_names_from_class

    def method_names_from_class(clazz) -> list[str]:
        if not isinstance(clazz, type):
            return original_names(clazz)
        shape = tuple(len(vars(c)) for c in clazz.__mro__)      # an attribute added or removed: ask again
        known = _METHOD_NAMES.get(clazz)
        if known is None or known[0] != shape:
            known = _METHOD_NAMES[clazz] = (shape, original_names(clazz))
        return list(known[1])

    responses.method_names_from_class = method_names_from_class
    ORIGINALS["gen_amzn_requestid_long"] = responses.gen_amzn_requestid_long

    def gen_amzn_requestid_long(headerdict=None) -> str:
        from moto.moto_api._internal import mock_random
        req_id = "".join(mock_random.choices(_REQUEST_ID_ALPHABET, k=52))
        if headerdict is not None and isinstance(headerdict, dict):
            headerdict.update({"x-amzn-requestid": req_id})
        return req_id

    responses.gen_amzn_requestid_long = gen_amzn_requestid_long


_REQUEST_ID_ALPHABET = string.ascii_letters + string.digits     # moto's get_random_string pool


# -- an item's size limit ------------------------------------------------------------------------------
def _install_item_size_check() -> None:
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models import dynamo_type
    from moto.dynamodb.models.utilities import bytesize
    item_cls, limited, dynamo = dynamo_type.Item, dynamo_type.LimitedSizeDict, dynamo_type.DynamoType
    ORIGINALS["item_init"] = original = item_cls.__init__

    def __init__(self, hash_key, range_key, attrs):
        if type(attrs) is not dict:
            return original(self, hash_key, range_key, attrs)
        self.hash_key = hash_key
        self.range_key = range_key
        self.attrs = sized = limited()
        total = 0
        for name, value in attrs.items():
            typed = dynamo(value)
            # moto's check on each insert: the sizes already in the item + this one > 405000. A
            # running total is that sum (the names of a dict are distinct, so nothing is replaced),
            # and as it only grows, the first insert that would raise is where the total passes it.
            total += bytesize(name) + typed.size()
            if total > 405000:
                raise ItemSizeTooLarge
            dict.__setitem__(sized, name, typed)

    item_cls.__init__ = __init__


def install() -> None:
    """Once per process, before the emulator serves (siyu_dev.emulator.EmulatorServer.start)."""
    global _installed
    if _installed:
        return
    _installed = True
    _install_validator()
    _install_condition_cache()
    _install_serializer()
    _install_parser()
    _install_backend_lookup()
    _install_request_shortcuts()
    _install_item_size_check()
    _install_map_parser()
    _install_clause_memo()
