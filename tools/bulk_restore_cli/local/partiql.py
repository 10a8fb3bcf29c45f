"""PartiQL's ExecuteStatement and BatchExecuteStatement on moto, for single-item statements, as DynamoDB runs them.

What DynamoDB does (developer guide, "PartiQL - a SQL-compatible query language", its statement,
data type and batch pages; the API reference of BatchExecuteStatement, ExecuteStatement and
BatchStatementError; botocore's service model for the shapes and codes):

- ``INSERT INTO "t" VALUE {'a': ?, 'b': 'text', 'n': 5}`` writes one item, and fails with
  DuplicateItemException ("Duplicate primary key exists in table") when an item with its key exists.
  Values are ``?`` parameters (any AttributeValue, in the order the ``?`` appear) or literals:
  'strings' (a quote doubled inside), numbers (1, -2.5, 1e3), TRUE / FALSE / NULL (any case),
  [lists], {'maps': ...} and <<sets>> of strings or numbers.
- ``UPDATE "t" SET a = ? [SET b = b + ?] [REMOVE c] WHERE pk = ? AND sk = ? [AND condition]``
  changes one item: WHERE must hold an equality on every key attribute (joined by AND, outside any
  OR / NOT / IN), and whatever else it says is a condition on the stored item. It never creates an
  item: DynamoDB adds ``attribute_exists(<partition key>)`` to the condition, so an UPDATE of a
  missing item fails ConditionalCheckFailed ("If the WHERE clause of the UPDATE statement does not
  evaluate to true for any item ..., ConditionalCheckFailedException is returned"). SET takes a
  value, a path, ``x + y`` / ``x - y`` (numbers), ``if_not_exists(path, v)`` and ``list_append(a, b)``.
- ``DELETE FROM "t" WHERE pk = ? AND sk = ? [AND condition]`` is a DeleteItem: with a condition,
  the condition is evaluated as a ConditionExpression (on an empty item when none is stored, so
  ``state = 'x'`` fails there); without one, deleting a missing item succeeds and does nothing.
- ``SELECT * FROM "t" WHERE pk = ? AND sk = ?`` reads one item.
- Conditions: =, <> (or !=), <, <=, >, >=, [NOT] IN (...) or [...], [NOT] BETWEEN .. AND ..,
  IS [NOT] MISSING, IS [NOT] NULL, attribute_exists, attribute_not_exists, attribute_type,
  begins_with, contains, size(path), AND / OR / NOT and parentheses. Keywords in any case, names
  plain or "double-quoted", tables too.
- BatchExecuteStatement runs 1 to 25 statements. More is the request's ValidationException (the
  model's length constraint, in AWS's model-validation wording); so is a batch mixing reads and
  writes ("Read and write requests together in the same batch is not supported.") and a batch
  naming one item twice ("Provided list of item keys contains duplicates"), both before any
  statement runs. Otherwise the answer is 200 with one ``Responses`` entry per statement, in order:
  ``{TableName}`` for a write, ``{TableName, Item?}`` for a read, or ``{Error: {Code, Message,
  Item?}}``: ConditionalCheckFailed, DuplicateItem, ResourceNotFound (these three with the
  statement's TableName), ValidationError (without it). Each statement succeeds or fails alone, as
  a single non-transactional write. A read in a batch must name exactly one item, by its key and
  nothing else ("Select statements within BatchExecuteStatement must specify the primary key in
  the where clause.").
- ExecuteStatement runs one statement; a failed statement is the call's error:
  ConditionalCheckFailedException (with ``Item`` when ReturnValuesOnConditionCheckFailure is
  ALL_OLD), DuplicateItemException, ValidationException, ResourceNotFoundException. A write answers
  ``{"Items": []}``.
- Validation messages are DynamoDB's PartiQL ones: "Number of parameters in request and statement
  don't match.", "Where clause does not contain a mandatory equality on all key attributes",
  "Multiple conditions on same key pk. Only single item Update/Insert/Delete are supported", "Key
  value must be of type S, N, or B. Key name: pk, Key type: BOOL", "Key attribute should be present
  in the item: Key sk", "Key attribute's data type should match its data type in table's schema:
  Key pk"; a missing table is "Requested resource not found".
- ReturnConsumedCapacity: per table, in the order the statements first name it. A write costs one
  unit per KB of the larger of the item before and after, at least 1; a write whose condition fails
  still consumes capacity, by the size of the existing item (at least 1), as the developer guide
  says of conditional writes. A read costs 0.5 per 4 KB (1 with ConsistentRead), at least one step.
  (The docs say only that the list is ordered by the statements. That a failed statement counts in
  a table's total but not in its ``Table`` arm (INDEXES), and that a table none of whose statements
  succeeded is left out, is what other emulators measured against DynamoDB, and is done so here.)

What moto (5.2) does: it hands every statement to py_partiql_parser over a copy of every table
(each call costs all items of all tables), an INSERT with parameters raises a TypeError (a 500),
and UPDATE ... WHERE conditions and DuplicateItem are not what DynamoDB does.

What this module changes: DynamoHandler's ``execute_statement`` and ``batch_execute_statement``
parse the subset above themselves and run each statement as the single-item call it is, through
the backend methods the item operations use (PutItem with ``attribute_not_exists(pk)``, UpdateItem
with ``attribute_exists(pk) AND condition``, DeleteItem with the condition, GetItem), with moto's
own expression parser, condition evaluation, update validation and executor, and its stream
records: a statement costs what its item costs, whatever the table holds, and behaves as the
equivalent UpdateItem / PutItem / DeleteItem does on moto (tests compare them on random writes).
Every request runs under the DynamoDB layer's request lock (bulk_restore_cli.local.dynamodb).

The fast path: the job's object writes are thousands of INSERTs and of UPDATEs of this shape,
``SET a = ? SET b = ? WHERE pk = ? AND sk = ? AND state = ?``. moto's update_item parses its
condition text, deep-copies the item (for the stream record), copies the parsed update and walks
it with ten validating processors before its executor sets the values, on every call; put_item
parses its condition text each time. So an INSERT, and an UPDATE whose actions are all ``SET name =
value`` (a parameter or a literal; distinct top-level attributes, none a key of the table or of an
index, nor a defined attribute) and whose WHERE beyond the key is ``name = value`` and
``attribute_exists`` / ``attribute_not_exists`` (IS [NOT] MISSING) terms joined by AND, do here
what those two calls do, step for step, on moto's own objects: the condition is moto's condition
tree (its comparison classes, the tree its parser makes of the text the other path renders),
evaluated on the stored item; an UPDATE's values are moto's DynamoType, set in order on the stored
Item with moto's item-size check; an INSERT runs moto's item checks and makes moto's Item; the
stream record goes to ``table.stream_shard.add`` (the streams layer's StreamLog, or moto's own
shard) from the item before to the item after, as those calls write it; the capacity is computed
as for any statement. Such a shape passes moto's update validation whatever the item (the other
shapes can fail it: a key, one attribute twice, arithmetic on what is not a number), which is why
it is the subset. Everything else goes through moto's calls. ``fast_path(False)`` turns it off
(bench/partiql_micro.py times both); tests compare it with PutItem / UpdateItem on random writes on
tables with a stream, records included.

A statement outside the subset (RETURNING, an index, a projection other than *, SET_ADD, a
parameter inside a nested literal, a SELECT by ExecuteStatement that does not name one item,
anything this parser cannot read) sends the whole request to moto's own implementation, unchanged.

Where it differs from DynamoDB, or the docs are silent:
- ``Error.Item`` is filled for a batch statement asking ALL_OLD, as the API reference documents.
  DynamoDB Local never fills it (it drops a batch member's ReturnValuesOnConditionCheckFailure),
  and other emulators report the live service leaving it out too: code must not depend on it.
- A parameter count that does not match is refused both ways (too few and too many); DynamoDB
  Local refuses only too few.
- Duplicate keys are refused before any statement runs. DynamoDB Local notices a duplicate only
  when it reaches it, after the statements before it were written; the docs are silent, and
  BatchWriteItem's and TransactWriteItems' rule (refuse the request, write nothing) is followed.
- An INSERT of an existing item is DuplicateItem even with ALL_OLD (DynamoDB Local answers
  ConditionalCheckFailed with the item then).
- Numbers are stored as written (moto's way); DynamoDB normalises them (1.50 -> 1.5).
- The 8 KB statement limit and the 16 MB batch payload limit are not checked.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

MAX_BATCH_STATEMENTS = 25

EMPTY_BATCH = "1 validation error detected: Value '[]' at 'statements' failed to satisfy constraint: Member must have length greater than or equal to 1"
TOO_MANY_STATEMENTS = (
    "1 validation error detected: Value at 'statements' failed to satisfy constraint: "
    f"Member must have length less than or equal to {MAX_BATCH_STATEMENTS}"
)
MIXED_BATCH = "Read and write requests together in the same batch is not supported."
DUPLICATE_KEYS = "Provided list of item keys contains duplicates"
PARAMETER_COUNT = "Number of parameters in request and statement don't match."
INCOMPLETE_KEY = "Where clause does not contain a mandatory equality on all key attributes"
SAME_KEY_TWICE = "Multiple conditions on same key {}. Only single item Update/Insert/Delete are supported"
KEY_VALUE_TYPE = "Key value must be of type S, N, or B. Key name: {}, Key type: {}"
KEY_ABSENT = "Key attribute should be present in the item: Key {}"
KEY_TYPE_MISMATCH = "Key attribute's data type should match its data type in table's schema: Key {}"
DUPLICATE_NAME = "Duplicate keys in tuple. Key: {}"
BATCH_READ_KEY = "Select statements within BatchExecuteStatement must specify the primary key in the where clause."
NOT_FOUND = "Requested resource not found"
CONDITION_FAILED = "The conditional request failed"
DUPLICATE_ITEM = "Duplicate primary key exists in table"
CAPACITY_MODES = ("NONE", "TOTAL", "INDEXES")

_originals: dict[str, Any] = {}


# ---- parsing ----------------------------------------------------------------------------------
#
# A statement parses (once per text) into plain tuples:
#   ("path", (name | index, ...))  ("param", position)  ("lit", attribute value)
#   ("call", function, (arguments...))  ("arith", "+" | "-", left, right)
#   ("cmp", operator, left, right)  ("between", x, low, high)  ("in", x, (values...))
#   ("and", left, right)  ("or", left, right)  ("not", x)


class Unsupported(Exception):
    """A statement outside the subset this module runs: moto's own PartiQL gets the request."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<quoted>"(?:[^"]|"")+")
      | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<symbol><<|>>|<=|>=|<>|!=|[-+=<>{}\[\](),:.?*])
    )""",
    re.VERBOSE,
)
_COMPARISONS = frozenset({"=", "<>", "!=", "<", "<=", ">", ">="})
_CONDITION_FUNCTIONS = frozenset({"attribute_exists", "attribute_not_exists", "attribute_type", "begins_with", "contains"})
_VALUE_FUNCTIONS = frozenset({"if_not_exists", "list_append"})
_KEYWORDS = frozenset(
    {"and", "or", "not", "in", "between", "is", "missing", "null", "true", "false", "where", "set", "remove", "from", "value", "returning"}
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    at = 0
    while True:
        match = _TOKEN.match(text, at)
        if match is None or match.lastgroup is None:
            if text[at:].strip():
                raise Unsupported(f"cannot read {text[at : at + 20]!r}")
            return tokens
        tokens.append((match.lastgroup, match.group(match.lastgroup)))
        at = match.end()


@dataclass(frozen=True)
class Parsed:
    """A statement of the subset: what it does, to which table, with which parts (see above)."""

    kind: str  # INSERT | UPDATE | DELETE | SELECT
    table: str
    parameters: int  # how many ? it holds
    item: tuple[tuple[str, Any], ...] = ()  # INSERT: (attribute, value node)
    sets: tuple[tuple[Any, Any], ...] = ()  # UPDATE: (path node, value node)
    removes: tuple[Any, ...] = ()  # UPDATE: path nodes
    where: Any = None
    refusal: str | None = None  # a statement DynamoDB refuses whatever its parameters (a ValidationError)


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokens(text)
        self.at = 0
        self.parameters = 0

    # -- tokens

    def peek(self, ahead: int = 0) -> tuple[str, str]:
        at = self.at + ahead
        return self.tokens[at] if at < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token[0] == "end":
            raise Unsupported("unexpected end")
        self.at += 1
        return token

    def is_word(self, *words: str, ahead: int = 0) -> bool:
        kind, text = self.peek(ahead)
        return kind == "word" and text.lower() in words

    def accept_word(self, *words: str) -> str | None:
        if self.is_word(*words):
            return self.take()[1].lower()
        return None

    def expect_word(self, word: str) -> None:
        if self.accept_word(word) is None:
            raise Unsupported(f"{word.upper()} expected")

    def is_symbol(self, *symbols: str) -> bool:
        kind, text = self.peek()
        return kind == "symbol" and text in symbols

    def accept_symbol(self, *symbols: str) -> str | None:
        if self.is_symbol(*symbols):
            return self.take()[1]
        return None

    def expect_symbol(self, symbol: str) -> None:
        if self.accept_symbol(symbol) is None:
            raise Unsupported(f"{symbol!r} expected")

    def end(self) -> None:
        if self.peek()[0] != "end":
            raise Unsupported(f"unexpected {self.peek()[1]!r}")

    # -- names

    def name(self) -> str:
        kind, text = self.take()
        if kind == "quoted":
            return text[1:-1].replace('""', '"')
        if kind == "word" and text.lower() not in _KEYWORDS:
            return text
        raise Unsupported(f"a name expected, not {text!r}")

    def table(self) -> str:
        name = self.name()
        if self.is_symbol("."):
            raise Unsupported("an index")
        return name

    def path(self) -> tuple[str, Any]:
        parts: list[str | int] = [self.name()]
        while True:
            if self.accept_symbol("."):
                parts.append(self.name())
            elif self.accept_symbol("["):
                kind, text = self.take()
                if kind != "number" or not text.isdigit():
                    raise Unsupported("a list index expected")
                parts.append(int(text))
                self.expect_symbol("]")
            else:
                return ("path", tuple(parts))

    # -- values

    def parameter(self) -> tuple[str, int]:
        self.parameters += 1
        return ("param", self.parameters - 1)

    def literal(self) -> dict[str, Any]:
        """A literal attribute value (no parameters inside)."""
        kind, text = self.peek()
        if kind == "string":
            self.take()
            return {"S": text[1:-1].replace("''", "'")}
        if kind == "number":
            self.take()
            return {"N": text}
        if kind == "symbol" and text == "-" and self.peek(1)[0] == "number":
            self.take()
            return {"N": "-" + self.take()[1]}
        if self.accept_word("true"):
            return {"BOOL": True}
        if self.accept_word("false"):
            return {"BOOL": False}
        if self.accept_word("null"):
            return {"NULL": True}
        if self.accept_symbol("["):
            values: list[dict[str, Any]] = []
            if not self.accept_symbol("]"):
                values.append(self.literal())
                while self.accept_symbol(","):
                    values.append(self.literal())
                self.expect_symbol("]")
            return {"L": values}
        if self.accept_symbol("{"):
            members: dict[str, dict[str, Any]] = {}
            if not self.accept_symbol("}"):
                while True:
                    name = self.member_name()  # before its value (an assignment evaluates its right side first)
                    members[name] = self.literal()
                    if not self.accept_symbol(","):
                        break
                self.expect_symbol("}")
            return {"M": members}
        if self.accept_symbol("<<"):
            elements = [self.literal()]
            while self.accept_symbol(","):
                elements.append(self.literal())
            self.expect_symbol(">>")
            types = {next(iter(e)) for e in elements}
            if types == {"S"}:
                return {"SS": [e["S"] for e in elements]}
            if types == {"N"}:
                return {"NS": [e["N"] for e in elements]}
            raise Unsupported("a set of other than strings or numbers")
        raise Unsupported(f"a value expected, not {text!r}")  # a ? inside a nested value, too

    def member_name(self) -> str:
        """A map's or an INSERT item's attribute name ('quoted') and its colon."""
        kind, text = self.take()
        if kind != "string":
            raise Unsupported("a quoted attribute name expected")
        self.expect_symbol(":")
        return text[1:-1].replace("''", "'")

    def value(self) -> tuple[str, Any]:
        """A top-level value: a parameter or a literal."""
        if self.accept_symbol("?"):
            return self.parameter()
        return ("lit", self.literal())

    def operand(self) -> tuple[Any, ...]:
        kind, text = self.peek()
        if kind == "symbol" and text == "?":
            self.take()
            return self.parameter()
        if kind in ("string", "number") or (kind == "symbol" and text in ("-", "[", "{", "<<")) or self.is_word("true", "false", "null"):
            return ("lit", self.literal())
        if kind == "word" and self.peek(1) == ("symbol", "("):
            function = text.lower()
            if function not in ("size", *_VALUE_FUNCTIONS):
                raise Unsupported(f"function {text}")
            self.take()
            return ("call", function, self.arguments())
        return self.path()

    def arguments(self) -> tuple[Any, ...]:
        self.expect_symbol("(")
        arguments = [self.operand()]
        while self.accept_symbol(","):
            arguments.append(self.operand())
        self.expect_symbol(")")
        return tuple(arguments)

    # -- conditions

    def condition(self) -> tuple[Any, ...]:
        node = self.conjunction()
        while self.accept_word("or"):
            node = ("or", node, self.conjunction())
        return node

    def conjunction(self) -> tuple[Any, ...]:
        node = self.negation()
        while self.accept_word("and"):
            node = ("and", node, self.negation())
        return node

    def negation(self) -> tuple[Any, ...]:
        if self.accept_word("not"):
            return ("not", self.negation())
        return self.predicate()

    def predicate(self) -> tuple[Any, ...]:
        if self.accept_symbol("("):
            node = self.condition()
            self.expect_symbol(")")
            return node
        kind, text = self.peek()
        if kind == "word" and text.lower() in _CONDITION_FUNCTIONS and self.peek(1) == ("symbol", "("):
            self.take()
            return ("call", text.lower(), self.arguments())
        left = self.operand()
        operator = self.accept_symbol(*_COMPARISONS)
        if operator is not None:
            return ("cmp", "<>" if operator == "!=" else operator, left, self.operand())
        if self.accept_word("is"):
            negated = self.accept_word("not") is not None
            if self.accept_word("missing"):
                node: tuple[Any, ...] = ("call", "attribute_not_exists", (left,))
            elif self.accept_word("null"):
                node = ("cmp", "=", left, ("lit", {"NULL": True}))
            else:
                raise Unsupported("IS of another type")
            return ("not", node) if negated else node
        negated = self.accept_word("not") is not None
        if self.accept_word("in"):
            closing = {"(": ")", "[": "]"}.get(self.accept_symbol("(", "[") or "")
            if closing is None:
                raise Unsupported("IN without a list")
            values = [self.operand()]
            while self.accept_symbol(","):
                values.append(self.operand())
            self.expect_symbol(closing)
            node = ("in", left, tuple(values))
        elif self.accept_word("between"):
            low = self.operand()
            self.expect_word("and")
            node = ("between", left, low, self.operand())
        else:
            raise Unsupported("a condition expected")
        return ("not", node) if negated else node

    # -- statements

    def statement(self) -> Parsed:
        if self.accept_word("insert"):
            return self.insert()
        if self.accept_word("update"):
            return self.update()
        if self.accept_word("delete"):
            self.expect_word("from")
            table = self.table()
            where = self.condition() if self.accept_word("where") else None
            self.end()
            return Parsed("DELETE", table, self.parameters, where=where)
        if self.accept_word("select"):
            self.expect_symbol("*")
            self.expect_word("from")
            table = self.table()
            where = self.condition() if self.accept_word("where") else None
            self.end()
            return Parsed("SELECT", table, self.parameters, where=where)
        raise Unsupported("not a statement of the subset")

    def insert(self) -> Parsed:
        self.expect_word("into")
        table = self.table()
        self.expect_word("value")
        self.expect_symbol("{")
        item: list[tuple[str, Any]] = []
        refusal = None
        while True:
            name = self.member_name()
            if any(name == other for other, _ in item):
                refusal = refusal or DUPLICATE_NAME.format(name)
            item.append((name, self.value()))
            if not self.accept_symbol(","):
                break
        self.expect_symbol("}")
        self.end()
        return Parsed("INSERT", table, self.parameters, item=tuple(item), refusal=refusal)

    def update(self) -> Parsed:
        table = self.table()
        sets: list[tuple[Any, Any]] = []
        removes: list[Any] = []
        while True:
            if self.accept_word("set"):
                while True:
                    target = self.path()
                    self.expect_symbol("=")
                    sets.append((target, self.update_value()))
                    if not self.accept_symbol(","):
                        break
            elif self.accept_word("remove"):
                removes.append(self.path())
                while self.accept_symbol(","):
                    removes.append(self.path())
            else:
                break
        if not sets and not removes:
            raise Unsupported("UPDATE without SET or REMOVE")
        where = self.condition() if self.accept_word("where") else None
        self.end()
        return Parsed("UPDATE", table, self.parameters, sets=tuple(sets), removes=tuple(removes), where=where)

    def update_value(self) -> tuple[Any, ...]:
        left = self.operand()
        operator = self.accept_symbol("+", "-")
        if operator is None:
            return left
        return ("arith", operator, left, self.operand())


@functools.lru_cache(maxsize=2048)
def parse(statement: str) -> Parsed | None:
    """``statement`` as the subset reads it; None when it is outside the subset (moto runs it)."""
    try:
        return _Parser(statement).statement()
    except Unsupported:
        return None


# ---- statements made ready to run ----------------------------------------------------------------


class Refusal(Exception):
    """A statement DynamoDB refuses: in a batch its Error entry, in ExecuteStatement the call's error."""

    def __init__(self, code: str, message: str, table: str | None = None, item: Any = None, units: float = 0.0):
        super().__init__(message)
        self.code = code
        self.message = message
        self.table = table  # echoed in a batch's entry
        self.item = item  # the stored item (moto's Item) for ALL_OLD
        self.units = units  # capacity charged for the attempt


class _NotMine(Exception):
    """A statement that parsed but must still go to moto (a SELECT that names no single item)."""


def _invalid(message: str) -> Refusal:
    return Refusal("ValidationError", message)


class _Expression:
    """The ExpressionAttributeNames / Values of one statement's expressions, every name a placeholder."""

    def __init__(self, parameters: list[dict[str, Any]]):
        self.parameters = parameters
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self._placeholders: dict[str, str] = {}

    def name(self, name: str) -> str:
        placeholder = self._placeholders.get(name)
        if placeholder is None:
            placeholder = self._placeholders[name] = f"#n{len(self._placeholders)}"
            self.names[placeholder] = name
        return placeholder

    def value(self, value: dict[str, Any]) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def path(self, parts: tuple[Any, ...]) -> str:
        text = self.name(parts[0])
        for part in parts[1:]:
            text += f"[{part}]" if isinstance(part, int) else "." + self.name(part)
        return text

    def operand(self, node: tuple[Any, ...]) -> str:
        kind = node[0]
        if kind == "path":
            return self.path(node[1])
        if kind in ("param", "lit"):
            return self.value(_bound(node, self.parameters))
        if kind == "call":
            return f"{node[1]}({', '.join(self.operand(a) for a in node[2])})"
        if kind == "arith":
            return f"{self.operand(node[2])} {node[1]} {self.operand(node[3])}"
        raise Unsupported(kind)

    def condition(self, node: tuple[Any, ...]) -> str:
        kind = node[0]
        if kind in ("and", "or"):
            return f"({self.condition(node[1])}) {kind.upper()} ({self.condition(node[2])})"
        if kind == "not":
            return f"NOT ({self.condition(node[1])})"
        if kind == "cmp":
            return f"{self.operand(node[2])} {node[1]} {self.operand(node[3])}"
        if kind == "between":
            return f"{self.operand(node[1])} BETWEEN {self.operand(node[2])} AND {self.operand(node[3])}"
        if kind == "in":
            return f"{self.operand(node[1])} IN ({', '.join(self.operand(v) for v in node[2])})"
        if kind == "call":
            return self.operand(node)
        raise Unsupported(kind)


def _bound(node: tuple[Any, ...], parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return parameters[node[1]] if node[0] == "param" else node[1]


@dataclass
class Ready:
    """A statement bound to its parameters and its table, ready to run once."""

    kind: str
    table: Any  # moto's Table
    key: dict[str, Any]
    identity: tuple[Any, ...]  # (table, hash key, range key): one item
    item: dict[str, Any] | None = None  # INSERT
    update: str | None = None
    condition: str | None = None
    names: dict[str, str] | None = None
    values: dict[str, Any] | None = None
    return_old: bool = False
    consistent: bool = False
    # The fast path (see the module's notes): an INSERT, or a simple UPDATE's values to set
    # (attribute, value), in order, and its WHERE condition beyond the key (a parsed node).
    fast: bool = False
    sets: tuple[tuple[str, dict[str, Any]], ...] = ()
    check: Any = None
    parameters: list[dict[str, Any]] | None = None


def _key_schema(table: Any) -> list[tuple[str, str]]:
    schema = [(table.hash_key_attr, table.hash_key_type)]
    if table.range_key_attr is not None:
        schema.append((table.range_key_attr, table.range_key_type))
    return schema


def _split_key(where: Any, names: set[str], parameters: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], Any]:
    """The key equalities of a WHERE clause and the condition left, as DynamoDB takes them apart:
    ``key = value`` terms reached through AND only (not under OR, NOT, IN or BETWEEN)."""
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any) -> Any:
        if node[0] == "and":
            left, right = walk(node[1]), walk(node[2])
            if left is not None and right is not None:
                return ("and", left, right)
            return left if left is not None else right
        if node[0] == "cmp" and node[1] == "=":
            for path, other in ((node[2], node[3]), (node[3], node[2])):
                if path[0] == "path" and len(path[1]) == 1 and path[1][0] in names and other[0] in ("param", "lit"):
                    name, value = path[1][0], _bound(other, parameters)
                    if name in found and found[name] != value:
                        raise _invalid(SAME_KEY_TWICE.format(name))
                    found[name] = value
                    return None
        return node

    rest = walk(where) if where is not None else None
    return found, rest


def _check_key(table: Any, key: dict[str, Any]) -> None:
    """A key as DynamoDB checks a PartiQL statement's: S, N or B, the schema's type, no empty value."""
    for name, wanted in _key_schema(table):
        kind = next(iter(key[name]))
        if kind not in ("S", "N", "B"):
            raise _invalid(KEY_VALUE_TYPE.format(name, kind))
        if kind != wanted:
            raise _invalid(KEY_TYPE_MISMATCH.format(name))
    for name, value in key.items():
        if next(iter(value.values())) in ("", b""):
            raise _invalid(
                f"One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: {name}"
            )


def _identity(backend: Any, table: Any, key: dict[str, Any]) -> tuple[Any, ...]:
    hash_key, range_key = backend.get_keys_value(table, key)
    return (table.name, hash_key, range_key)


def prepare(backend: Any, parsed: Parsed, request: dict[str, Any], *, batch: bool) -> Ready:
    """``parsed`` bound to the request's parameters and its table; Refusal when DynamoDB refuses it
    before reading anything, _NotMine for an ExecuteStatement SELECT that names no single item."""
    from moto.dynamodb.exceptions import MockValidationException, ResourceNotFoundException

    parameters = list(request.get("Parameters") or [])
    if len(parameters) != parsed.parameters:
        raise _invalid(PARAMETER_COUNT)
    if parsed.refusal is not None:
        raise _invalid(parsed.refusal)
    try:
        table = backend.get_table(parsed.table)
    except ResourceNotFoundException:
        raise Refusal("ResourceNotFound", NOT_FOUND, table=parsed.table) from None
    return_old = request.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
    consistent = bool(request.get("ConsistentRead"))

    if parsed.kind == "INSERT":
        from moto.dynamodb.responses import validate_put_has_empty_attrs, validate_put_has_empty_keys

        item = {name: _bound(node, parameters) for name, node in parsed.item}
        for name, wanted in _key_schema(table):
            if name not in item:
                raise _invalid(KEY_ABSENT.format(name))
            if next(iter(item[name])) != wanted:
                raise _invalid(KEY_TYPE_MISMATCH.format(name))
        try:
            validate_put_has_empty_keys(item, table)
            validate_put_has_empty_attrs(item, table)
        except MockValidationException as exc:
            raise _invalid(exc.message) from None
        key = {name: item[name] for name, _ in _key_schema(table)}
        return Ready("INSERT", table, key, _identity(backend, table, key), item=item, return_old=return_old, fast=_fast)

    key_names = {name for name, _ in _key_schema(table)}
    expression = _Expression(parameters)
    try:
        found, rest = _split_key(parsed.where, key_names, parameters)
        if not key_names <= found.keys():
            raise _invalid(INCOMPLETE_KEY)
        key = {name: found[name] for name in key_names}
        if parsed.kind == "SELECT" and batch and rest is not None:
            raise _invalid(BATCH_READ_KEY)
    except Refusal:
        if parsed.kind != "SELECT":
            raise
        if batch:
            raise _invalid(BATCH_READ_KEY) from None
        raise _NotMine() from None
    _check_key(table, key)
    identity = _identity(backend, table, key)
    if parsed.kind == "UPDATE" and _fast and _simple_sets(parsed, table) and (rest is None or _simple_check(rest)):
        return Ready(
            "UPDATE",
            table,
            key,
            identity,
            return_old=return_old,
            fast=True,
            sets=tuple((target[1][0], _bound(value, parameters)) for target, value in parsed.sets),
            check=rest,
            parameters=parameters,
        )
    condition = expression.condition(rest) if rest is not None else None
    if parsed.kind == "SELECT":
        return Ready(
            "SELECT", table, key, identity, condition=condition, names=expression.names, values=expression.values, consistent=consistent
        )
    if parsed.kind == "DELETE":
        return Ready(
            "DELETE", table, key, identity, condition=condition, names=expression.names, values=expression.values, return_old=return_old
        )
    exists = f"attribute_exists({expression.name(table.hash_key_attr)})"
    sets = [f"{expression.path(target[1])} = {expression.operand(value)}" for target, value in parsed.sets]
    removes = [expression.path(target[1]) for target in parsed.removes]
    update = " ".join(part for part in (sets and "SET " + ", ".join(sets), removes and "REMOVE " + ", ".join(removes)) if part)
    return Ready(
        "UPDATE",
        table,
        key,
        identity,
        update=update,
        condition=exists if condition is None else f"{exists} AND ({condition})",
        names=expression.names,
        values=expression.values,
        return_old=return_old,
    )


# ---- running ------------------------------------------------------------------------------------


def _write_units(size: int) -> float:
    return float(max(1, math.ceil(size / 1024)))


def _read_units(size: int, consistent: bool) -> float:
    return max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)


def run(backend: Any, ready: Ready) -> tuple[Any, float]:
    """Run one statement through the backend calls its item operation makes: (the item read, for a
    SELECT; the capacity it consumed). Refusal when its condition fails or moto refuses the write."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import ConditionalCheckFailed, MockValidationException

    table, name = ready.table, ready.table.name
    _, hash_key, range_key = ready.identity
    current = table.get_item(hash_key, range_key)
    before = current.size() if current is not None else 0
    if ready.kind == "SELECT":
        units = _read_units(before, ready.consistent)
        if (
            current is not None
            and ready.condition is not None
            and not get_filter_expression(ready.condition, ready.names, ready.values).expr(current)
        ):
            current = None  # ExecuteStatement's filter beyond the key
        return current, units
    try:
        if ready.kind == "INSERT" and ready.fast:
            assert ready.item is not None
            _insert(table, ready.item, hash_key, range_key, current)
        elif ready.kind == "UPDATE" and ready.fast:
            _update(backend, table, ready, current)
        elif ready.kind == "INSERT":
            assert ready.item is not None
            backend.put_item(
                name,
                ready.item,
                condition_expression="attribute_not_exists(#k)",
                expression_attribute_names={"#k": table.hash_key_attr},
                expression_attribute_values={},
            )
        elif ready.kind == "UPDATE":
            backend.update_item(
                name,
                ready.key,
                update_expression=ready.update,
                expression_attribute_names=ready.names,
                expression_attribute_values=ready.values,
                condition_expression=ready.condition,
            )
        else:
            backend.delete_item(name, ready.key, ready.names, ready.values, ready.condition)
    except ConditionalCheckFailed:
        units = _write_units(before)  # a failed conditional write: the existing item's size, at least 1
        if ready.kind == "INSERT":
            raise Refusal("DuplicateItem", DUPLICATE_ITEM, table=name, units=units) from None
        raise Refusal(
            "ConditionalCheckFailed", CONDITION_FAILED, table=name, item=current if ready.return_old else None, units=units
        ) from None
    except MockValidationException as exc:
        raise _invalid(exc.message) from None
    after = table.get_item(hash_key, range_key)
    return None, _write_units(max(before, after.size() if after is not None else 0))


# ---- the fast path -------------------------------------------------------------------------------

_fast = True  # whether INSERTs and simple UPDATEs take the fast path (``fast_path``)


@contextmanager
def fast_path(enabled: bool) -> Iterator[None]:
    """Run statements with the fast path on or off for a while (off: every write goes through
    moto's put_item / update_item, as the item operations do). For comparisons and benchmarks."""
    global _fast
    with _lock():
        was, _fast = _fast, enabled
    try:
        yield
    finally:
        with _lock():
            _fast = was


def fast_path_enabled() -> bool:
    return _fast


def _is_name(node: Any) -> bool:
    """A top-level attribute, named plainly or "quoted" (no dots, no index)."""
    return node[0] == "path" and len(node[1]) == 1


def _simple_sets(parsed: Parsed, table: Any) -> bool:
    """An UPDATE whose actions are all ``SET name = value`` (a parameter or a literal), each on
    another attribute that is no key of the table or of an index, nor a defined attribute: moto's
    validator passes such an update whatever the item, and its executor stores each value."""
    if parsed.removes:
        return False
    guarded = {table.hash_key_attr, table.range_key_attr, *(a["AttributeName"] for a in table.attr), *table.attribute_keys}
    seen: set[str] = set()
    for target, value in parsed.sets:
        if not _is_name(target) or value[0] not in ("param", "lit"):
            return False
        name = target[1][0]
        if name in guarded or name in seen:
            return False  # moto's key, type or empty-key checks, or its overlapping paths error
        seen.add(name)
    return True


def _simple_check(node: Any) -> bool:
    """A condition of ``name = value``, ``attribute_exists(name)``, ``attribute_not_exists(name)``
    (IS [NOT] MISSING), ``NOT`` of one of the two functions, joined by AND."""
    kind = node[0]
    if kind == "and":
        return _simple_check(node[1]) and _simple_check(node[2])
    if kind == "cmp":
        left, right = node[2], node[3]
        return node[1] == "=" and ((_is_name(left) and right[0] in ("param", "lit")) or (_is_name(right) and left[0] in ("param", "lit")))
    if kind == "not":
        return node[1][0] == "call" and _simple_check(node[1])
    if kind == "call":
        return node[1] in ("attribute_exists", "attribute_not_exists") and len(node[2]) == 1 and _is_name(node[2][0])
    return False


def _moto_condition(node: Any, parameters: list[dict[str, Any]]) -> Any:
    """The condition moto's ConditionExpressionParser makes of the expression this statement
    renders to (``_Expression.condition``), built from moto's own operators: the same tree, the same
    evaluation, without the text to lex and parse."""
    from moto.dynamodb.comparisons import FUNC_CLASS, AttributePath, AttributeValue, OpAnd, OpEqual, OpNot

    kind = node[0]
    if kind == "and":
        return OpAnd(_moto_condition(node[1], parameters), _moto_condition(node[2], parameters))
    if kind == "not":
        return OpNot(_moto_condition(node[1], parameters))
    if kind == "call":
        return FUNC_CLASS[node[1]](AttributePath([node[2][0][1][0]]))

    def operand(side: Any) -> Any:
        return AttributePath([side[1][0]]) if side[0] == "path" else AttributeValue(_bound(side, parameters))

    return OpEqual(operand(node[2]), operand(node[3]))


def _insert(table: Any, attrs: dict[str, Any], hash_key: Any, range_key: Any, current: Any) -> None:
    """moto's Table.put_item with ``attribute_not_exists(<partition key>)``, step for step: the
    same item checks, the Item made the same way (its size limit), ConditionalCheckFailed when an
    item is stored, then the item stored and its stream record written. The key's presence and
    types were checked by ``prepare`` (DynamoDB's PartiQL messages, before moto's)."""
    from moto.dynamodb.exceptions import ConditionalCheckFailed
    from moto.dynamodb.models.dynamo_type import Item

    table._validate_item_types(attrs)
    table._validate_key_sizes(attrs)
    item = Item(hash_key, range_key, attrs)
    if current is not None:
        raise ConditionalCheckFailed
    if range_key is not None:
        table.items[hash_key][range_key] = item
    else:
        table.items[hash_key] = item
    if table.stream_shard is not None:
        table.stream_shard.add(current, item)


def _update(backend: Any, table: Any, ready: Ready, current: Any) -> None:
    """moto's update_item of a simple UPDATE (``_simple_sets``), step for step: the condition
    ``attribute_exists(<partition key>) AND <WHERE beyond the key>`` on the stored item, then each
    SET applied in order to the stored item as the transactions' simple updates apply theirs
    (``apply_update_plan``: moto's DynamoType, the size check of moto's item dict, the values set
    before an ItemSizeToUpdateTooLarge staying, as in moto), then one stream record from the item
    before to the item after."""
    from moto.dynamodb.comparisons import AttributePath, FuncAttrExists, OpAnd
    from moto.dynamodb.exceptions import ConditionalCheckFailed

    from bulk_restore_cli.local.dynamodb import _snapshot, apply_update_plan

    log = table.stream_shard
    if log is not None:
        from bulk_restore_cli.local import dynamodb_streams

        if dynamodb_streams.installed():
            log = dynamodb_streams.adopt(table)  # as the streams layer's update_item does first
    condition = FuncAttrExists(AttributePath([table.hash_key_attr]))
    if ready.check is not None:
        condition = OpAnd(condition, _moto_condition(ready.check, ready.parameters or []))
    if not condition.expr(current):
        raise ConditionalCheckFailed
    old = _snapshot(current) if log is not None else None  # a SET replaces values, never changes one in place
    apply_update_plan(backend, table, ready.key, current, [("SET", name, value) for name, value in ready.sets])
    if log is not None:
        log.add(old, current)


class _Capacity:
    """ReturnConsumedCapacity's figures, per table in the order the statements name them."""

    def __init__(self, mode: str):
        self.mode = mode
        self.tables: dict[str, list[float]] = {}  # name: [total, succeeded]

    def charge(self, table: str, units: float, succeeded: bool) -> None:
        figures = self.tables.setdefault(table, [0.0, 0.0])
        figures[0] += units
        if succeeded:
            figures[1] += units

    def entry(self, table: str, total: float, succeeded: float) -> dict[str, Any]:
        entry: dict[str, Any] = {"TableName": table, "CapacityUnits": total}
        if self.mode == "INDEXES":
            entry["Table"] = {"CapacityUnits": succeeded}
        return entry

    def entries(self) -> list[dict[str, Any]] | None:
        if self.mode == "NONE":
            return None
        entries = [self.entry(table, total, succeeded) for table, (total, succeeded) in self.tables.items() if succeeded]
        return entries or None


def _capacity_mode(body: dict[str, Any]) -> str:
    from moto.dynamodb.exceptions import MockValidationException

    mode = body.get("ReturnConsumedCapacity") or "NONE"
    if mode not in CAPACITY_MODES:
        raise MockValidationException(
            f"1 validation error detected: Value '{mode}' at 'returnConsumedCapacity' failed to satisfy constraint: "
            "Member must satisfy enum value set: [INDEXES, TOTAL, NONE]"
        )
    return mode


def _lock() -> Any:
    from bulk_restore_cli.local.dynamodb import _requests  # the layer's request lock (reentrant)

    return _requests


def batch_execute_statement(handler: Any) -> Any:
    """DynamoHandler.batch_execute_statement: the subset as DynamoDB runs it, else moto's own."""
    from moto.dynamodb.exceptions import MockValidationException
    from moto.dynamodb.responses import DynamoResult

    body = handler.body
    statements = body.get("Statements") or []
    mode = _capacity_mode(body)
    if not statements:
        raise MockValidationException(EMPTY_BATCH)
    if len(statements) > MAX_BATCH_STATEMENTS:
        raise MockValidationException(TOO_MANY_STATEMENTS)
    parsed = [parse(s.get("Statement") or "") for s in statements]
    if any(p is None for p in parsed):
        return _originals["batch_execute_statement"](handler)
    reads = {p.kind == "SELECT" for p in parsed if p is not None}
    if len(reads) > 1:
        raise MockValidationException(MIXED_BATCH)
    with _lock():
        backend = handler.dynamodb_backend
        prepared: list[Ready | Refusal] = []
        named: set[tuple[Any, ...]] = set()
        for statement, request in zip(parsed, statements, strict=True):
            assert statement is not None
            try:
                ready = prepare(backend, statement, request, batch=True)
            except Refusal as refusal:
                prepared.append(refusal)
                continue
            if ready.identity in named:
                raise MockValidationException(DUPLICATE_KEYS)
            named.add(ready.identity)
            prepared.append(ready)

        capacity = _Capacity(mode)
        responses: list[dict[str, Any]] = []
        for ready in prepared:
            try:
                if isinstance(ready, Refusal):
                    raise ready
                item, units = run(backend, ready)
            except Refusal as refusal:
                responses.append(_error_entry(refusal))
                if refusal.units and refusal.table is not None:
                    capacity.charge(refusal.table, refusal.units, succeeded=False)
                continue
            capacity.charge(ready.table.name, units, succeeded=True)
            response: dict[str, Any] = {"TableName": ready.table.name}
            if item is not None:
                response["Item"] = item.attrs
            responses.append(response)
        result: dict[str, Any] = {"Responses": responses}
        entries = capacity.entries()
        if entries is not None:
            result["ConsumedCapacity"] = entries
        return DynamoResult(result)


def _error_entry(refusal: Refusal) -> dict[str, Any]:
    error: dict[str, Any] = {"Code": refusal.code, "Message": refusal.message}
    if refusal.item is not None:
        error["Item"] = refusal.item.attrs
    entry: dict[str, Any] = {"Error": error}
    if refusal.table is not None and refusal.code != "ValidationError":
        entry["TableName"] = refusal.table
    return entry


def execute_statement(handler: Any) -> Any:
    """DynamoHandler.execute_statement: the subset as DynamoDB runs it, else moto's own."""
    from moto.dynamodb.exceptions import ConditionalCheckFailed, MockValidationException, ResourceNotFoundException
    from moto.dynamodb.responses import DynamoResult

    body = handler.body
    parsed = parse(body.get("Statement") or "")
    if parsed is None:
        return _originals["execute_statement"](handler)
    mode = _capacity_mode(body)
    with _lock():
        backend = handler.dynamodb_backend
        try:
            ready = prepare(backend, parsed, body, batch=False)
            item, units = run(backend, ready)
        except _NotMine:
            return _originals["execute_statement"](handler)
        except Refusal as refusal:
            if refusal.code == "ConditionalCheckFailed":
                raise ConditionalCheckFailed(item=refusal.item.to_json()["Attributes"] if refusal.item is not None else None) from None
            if refusal.code == "DuplicateItem":
                raise _duplicate_item() from None
            if refusal.code == "ResourceNotFound":
                raise ResourceNotFoundException(refusal.message) from None
            raise MockValidationException(refusal.message) from None
        result: dict[str, Any] = {"Items": [item.attrs] if item is not None else []}
        if mode != "NONE":
            capacity = _Capacity(mode)
            capacity.charge(ready.table.name, units, succeeded=True)
            result["ConsumedCapacity"] = capacity.entry(ready.table.name, units, units)
        return DynamoResult(result)


def _duplicate_item() -> Exception:
    from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException

    return DynamodbException(ERROR_TYPE_PREFIX + "DuplicateItemException", DUPLICATE_ITEM)


# ---- installing ----------------------------------------------------------------------------------


def install() -> None:
    """Route moto's PartiQL actions here. Called by the DynamoDB layer's patch (under its lock)."""
    from moto.dynamodb.responses import DynamoHandler

    if "batch_execute_statement" not in _originals:
        _originals["batch_execute_statement"] = DynamoHandler.__dict__["batch_execute_statement"]
        _originals["execute_statement"] = DynamoHandler.__dict__["execute_statement"]
    DynamoHandler.batch_execute_statement = batch_execute_statement  # type: ignore[method-assign]
    DynamoHandler.execute_statement = execute_statement  # type: ignore[method-assign]


def uninstall() -> None:
    """moto's own PartiQL again. Called by the DynamoDB layer's unpatch (under its lock)."""
    from moto.dynamodb.responses import DynamoHandler

    if "batch_execute_statement" in _originals:
        DynamoHandler.batch_execute_statement = _originals["batch_execute_statement"]  # type: ignore[method-assign]
        DynamoHandler.execute_statement = _originals["execute_statement"]  # type: ignore[method-assign]


def installed() -> bool:
    from moto.dynamodb.responses import DynamoHandler

    return DynamoHandler.__dict__.get("batch_execute_statement") is batch_execute_statement
