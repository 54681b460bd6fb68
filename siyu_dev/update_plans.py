"""UpdateItem's expression applied by a plan compiled once per text, for the simple forms siyu writes.

Measured on a coupon claim (a TransactWriteItems of 2 Puts and 2 Updates such as `SET #1 = :1 ADD #0
:2`): moto's update_item took ~1 ms of emulator CPU per Update, most of it in its expression machinery:
the validator deep-copies the parsed tree and runs ten traversals over it (resolving placeholders,
values, paths and functions, checking what may not be updated), then normalizes the copy and walks it
again to execute it. For an expression made only of

  SET path = :value | SET path = if_not_exists(path, :value) | ADD path :number | REMOVE path

where every path is one top-level attribute (`#name` or a plain name), that work comes down to: look
up each placeholder, build each value, read the if_not_exists attribute, then assign / add / pop. A
plan holds those actions in the order moto executes them (moto's own normalize() of the tree, once
per text), and applies them to the item with moto's own operations (DynamoType(value), DynamoType +,
the item's size-checked assignment), so the item, its aliasing (if_not_exists hands over the item's
own value, as moto's does) and a size refusal midway (the same actions applied before it) are moto's.

The plan only answers where moto's validation would pass: every placeholder and value defined, no
two actions on one attribute, no key attribute in any path, no reserved word as a plain name, no
path that moto's type and empty-key checks look at, an ADD of a number to a number or to nothing.
Anything else (every refusal included) takes moto's validator and executor, which give moto's
answer. update_item itself (conditions, a new item's creation, stream records, ReturnValues) stays
moto's: the plan replaces only the validator and executor it calls (moto.dynamodb.models' names).
tests/integration/test_emulator_update_plans.py compares both ways on many expressions and items.
"""
from __future__ import annotations

import copy

_LIMIT = 65536
_PLANS: dict[str, object] = {}          # expression text -> _Plan, or False when moto's path serves it
ORIGINALS: dict[str, object] = {}       # moto's validator and executor classes, for tests comparing answers
_installed = False


class _Plan:
    """An expression's actions in moto's execution order: (kind, token, is_name, value), where value is
    (":v",) for SET/ADD, (":v", token, is_name) for SET if_not_exists(token, :v), None for REMOVE."""

    __slots__ = ("actions", "paths")

    def __init__(self, actions: tuple, paths: tuple):
        self.actions = actions
        self.paths = paths          # every path's (token, is_name), the if_not_exists ones included


class _Applied:
    """What the validator hands update_item: the plan with its values resolved against `item`.
    normalize() is a no-op (the plan's order is moto's normalized order)."""

    __slots__ = ("steps", "item")

    def __init__(self, steps: list, item):
        self.steps = steps
        self.item = item

    def normalize(self) -> None:
        return None


def _compile(tree):
    """The plan for a parsed tree, or None when it holds anything but the simple forms."""
    from moto.dynamodb.parsing import ast_nodes as n
    single = {n.ExpressionAttributeName: True, n.ExpressionAttribute: False}

    def path_of(node):
        if type(node) is not n.UpdateExpressionPath or len(node.children or ()) != 1:
            return None
        element = node.children[0]
        is_name = single.get(type(element))
        if is_name is None or len(element.children or ()) != 1 or type(element.children[0]) is not str:
            return None
        return element.children[0], is_name

    def value_of(node):
        if type(node) is n.ExpressionAttributeValue and len(node.children or ()) == 1 \
                and type(node.children[0]) is str:
            return node.children[0]
        return None

    clause_types = {n.UpdateExpressionSetClause, n.UpdateExpressionAddClause, n.UpdateExpressionRemoveClause}
    containers = {n.UpdateExpression, n.UpdateExpressionSetActions, n.UpdateExpressionAddActions,
                  n.UpdateExpressionRemoveActions} | clause_types
    action_types = {n.UpdateExpressionSetAction, n.UpdateExpressionAddAction, n.UpdateExpressionRemoveAction}
    # the tree may hold only containers and the three actions (moto's ActionCountValidator: one clause each)
    stack, found = [tree], []
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind in action_types:
            found.append(node)
        elif kind in containers:
            stack.extend(node.children or ())
        else:
            return None
    if type(tree) is not n.UpdateExpression or not found:
        return None
    if any(len(tree.find_clauses([c])) > 1 for c in clause_types):
        return None
    normalized = copy.deepcopy(tree)
    normalized.normalize()                      # moto's execution order
    actions, paths = [], []
    for action in normalized.children:
        kind = type(action)
        children = action.children or ()
        if kind is n.UpdateExpressionRemoveAction:
            if len(children) != 1:
                return None
            target, value = path_of(children[0]), None
        elif kind is n.UpdateExpressionAddAction:
            if len(children) != 2:
                return None
            target, value = path_of(children[0]), value_of(children[1])
            value = None if value is None else (value,)
            if value is None:
                return None
        elif kind is n.UpdateExpressionSetAction:
            if len(children) != 2 or type(children[1]) is not n.UpdateExpressionValue \
                    or len(children[1].children or ()) != 1:
                return None
            target, operand = path_of(children[0]), children[1].children[0]
            if type(operand) is n.UpdateExpressionFunction:
                args = operand.children or ()
                if len(args) != 3 or args[0] != "if_not_exists":
                    return None
                source, fallback = path_of(args[1]), value_of(args[2])
                if source is None or fallback is None:
                    return None
                value = (fallback, *source)
                paths.append(source)
            else:
                value = value_of(operand)
                if value is None:
                    return None
                value = (value,)
        else:
            return None
        if target is None:
            return None
        paths.append(target)
        actions.append(({n.UpdateExpressionSetAction: "SET", n.UpdateExpressionAddAction: "ADD",
                         n.UpdateExpressionRemoveAction: "REMOVE"}[kind], target[0], target[1], value))
    return _Plan(tuple(actions), tuple(paths))


def plan_for(tree):
    """The plan of a tree the emulator's parse cache handed out (moto_speedups.remember_text), or None."""
    from siyu_dev import moto_speedups
    known = moto_speedups._TEXTS.get(id(tree))
    if known is None or known[0] is not tree:
        return None
    text = known[1]
    plan = _PLANS.get(text)
    if plan is None:
        plan = _compile(tree) or False
        if len(_PLANS) < _LIMIT:
            _PLANS[text] = plan
    return plan or None


def resolve(plan: _Plan, names, values, item, table):
    """The plan's steps for `item`, or None where moto's validation might refuse (or not pass as here)."""
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.parsing.reserved_keywords import ReservedKeywords
    names = names if type(names) is dict else None

    def name_of(token, is_name):
        if not is_name:
            if token.upper() in ReservedKeywords.get_reserved_keywords():
                return None
            return token
        if names is None:
            return None
        name = names.get(token)
        return name if type(name) is str else None

    keys = table.table_key_attrs
    for token, is_name in plan.paths:
        name = name_of(token, is_name)
        if name is None or name in keys or (names or {}).get(token, token) in keys:
            return None
    checked = {d["AttributeName"] for d in table.attr} | set(table.attribute_keys)
    attrs = item.attrs
    steps, targets = [], []
    for kind, token, is_name, value in plan.actions:
        name = name_of(token, is_name)
        targets.append(name)
        if kind == "REMOVE":
            steps.append((kind, name, None))
            continue
        if type(values) is not dict or value[0] not in values:
            return None
        try:
            typed = DynamoType(values[value[0]])
        except Exception:  # noqa: BLE001 - moto's validator meets the same value: its answer
            return None
        if kind == "ADD":
            current = attrs.get(name) if isinstance(attrs, dict) else None
            if typed.type != "N" or (current is not None and getattr(current, "type", None) != "N"):
                return None
            steps.append((kind, name, typed))
            continue
        if token in checked:            # moto's type and empty-key checks read this token
            return None
        if len(value) == 3:
            source = name_of(value[1], value[2])
            try:
                typed = attrs[source]       # if_not_exists: the item's own value when it has one
            except (KeyError, TypeError):
                pass
        steps.append((kind, name, typed))
    if len(set(targets)) != len(targets):
        return None
    return steps


def apply(steps: list, item) -> None:
    """moto's SetExecutor / AddExecutor / RemoveExecutor on one top-level attribute each, in order."""
    from moto.dynamodb.models.dynamo_type import DynamoType
    attrs = item.attrs
    for kind, name, typed in steps:
        if kind == "SET":
            attrs[name] = typed
        elif kind == "ADD":
            existing = attrs[name] if name in attrs else DynamoType({"N": "0"})
            attrs[name] = existing + typed
        else:
            attrs.pop(name, None)


def install() -> None:
    """Once per process, after moto_speedups.install() (the fallback is its sped-up validator)."""
    global _installed
    if _installed:
        return
    _installed = True
    from moto.dynamodb import models
    validator_cls = ORIGINALS["validator"] = models.UpdateExpressionValidator
    executor_cls = ORIGINALS["executor"] = models.UpdateExpressionExecutor

    class PlannedValidator:
        """moto's UpdateExpressionValidator where a plan answers; builds moto's only when it does not."""

        def __init__(self, expression, expression_attribute_names, expression_attribute_values, item, table):
            self.args = (expression, expression_attribute_names, expression_attribute_values, item, table)

        def validate(self):
            expression, names, values, item, table = self.args
            plan = plan_for(expression)
            steps = resolve(plan, names, values, item, table) if plan is not None else None
            if steps is None:
                return validator_cls(*self.args).validate()
            return _Applied(steps, item)

    class PlannedExecutor:
        def __init__(self, update_ast, item, expression_attribute_names):
            self.args = (update_ast, item, expression_attribute_names)

        def execute(self, node=None):
            update_ast, item, names = self.args
            if type(update_ast) is not _Applied:
                return executor_cls(update_ast, item, names).execute(node)
            if node is not None or update_ast.item is not item:
                raise AssertionError("a planned update is applied to the item it was resolved for")
            apply(update_ast.steps, item)
            return None

    models.UpdateExpressionValidator = PlannedValidator
    models.UpdateExpressionExecutor = PlannedExecutor
