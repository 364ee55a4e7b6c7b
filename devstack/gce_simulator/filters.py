"""The ``filter`` expression of Compute Engine list and aggregatedList calls, for the fields the simulator serves.

Supported (as documented for the compute v1 ``filter`` query parameter):
- comparisons ``field = value``, ``!=``, ``>``, ``<``, ``>=``, ``<=``; ``field : value`` (has / substring;
  ``labels.owner:*`` tests that the key exists); ``field eq 'regex'`` / ``field ne 'regex'`` (full match);
- nested fields with dots (``labels.app``, ``scheduling.preemptible``); values quoted or bare; ``*`` in a ``=``
  value is a wildcard;
- ``AND`` (explicit, or juxtaposed expressions such as ``(labels.app = web) (labels.tier = app)``), ``OR``,
  ``NOT`` / ``-`` and parentheses.
An unparsable filter raises ``FilterError`` (the server answers 400 ``invalid``, as Compute Engine does).
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\() | (?P<rparen>\)) |
        (?P<op>!=|>=|<=|=|>|<|:) |
        (?P<quoted>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*') |
        (?P<word>[^\s()=!<>:"']+)
    )""",
    re.VERBOSE,
)


class FilterError(ValueError):
    pass


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise FilterError(f"invalid filter near {text[pos:]!r}")
        pos = match.end()
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "quoted":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value))
    return tokens


def _lookup(resource: Any, path: str) -> Any:
    current = resource
    for part in path.split("."):
        if isinstance(current, dict):
            if part not in current:
                return None
            current = current[part]
        elif isinstance(current, list):
            # any element: resolve against each and return the list of hits
            hits = [_lookup(item, part) for item in current]
            return [h for h in hits if h is not None]
        else:
            return None
    return current


def _as_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _compare(actual: Any, op: str, expected: str) -> bool:
    if isinstance(actual, list):
        if op in ("!=", "ne"):
            return all(_compare(a, op, expected) for a in actual)
        return any(_compare(a, op, expected) for a in actual)
    if op == ":":
        if actual is None:
            return False
        if expected == "*":
            return True
        if isinstance(actual, dict):
            return expected in actual
        pattern = expected if "*" in expected else f"*{expected}*"
        return fnmatch.fnmatchcase(_as_str(actual), pattern)
    if op in ("eq", "ne"):
        try:
            hit = actual is not None and re.fullmatch(expected, _as_str(actual)) is not None
        except re.error as exc:
            raise FilterError(f"invalid regular expression {expected!r}: {exc}") from exc
        return hit if op == "eq" else not hit
    if op in ("=", "!="):
        if actual is None:
            hit = False
        elif "*" in expected:
            hit = fnmatch.fnmatchcase(_as_str(actual), expected)
        else:
            hit = _as_str(actual) == expected
        return hit if op == "=" else not hit
    if actual is None:
        return False
    left: Any = _as_str(actual)
    right: Any = expected
    with contextlib.suppress(ValueError):
        left, right = float(left), float(right)
    if op == ">":
        return bool(left > right)
    if op == "<":
        return bool(left < right)
    if op == ">=":
        return bool(left >= right)
    if op == "<=":
        return bool(left <= right)
    raise FilterError(f"unknown operator {op!r}")


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise FilterError("unexpected end of filter")
        self.pos += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.parse_or()
        if self.peek() is not None:
            raise FilterError(f"unexpected {self.peek()[1]!r} in filter")  # type: ignore[index]
        return predicate

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while (token := self.peek()) is not None and token == ("word", "OR"):
            self.take()
            parts.append(self.parse_and())
        if len(parts) == 1:
            return parts[0]
        return lambda r: any(p(r) for p in parts)

    def parse_and(self) -> Predicate:
        parts = [self.parse_unary()]
        while (token := self.peek()) is not None and token[0] != "rparen" and token != ("word", "OR"):
            if token == ("word", "AND"):
                self.take()
            parts.append(self.parse_unary())
        if len(parts) == 1:
            return parts[0]
        return lambda r: all(p(r) for p in parts)

    def parse_unary(self) -> Predicate:
        token = self.take()
        if token == ("word", "NOT"):
            inner = self.parse_unary()
            return lambda r: not inner(r)
        if token[0] == "word" and token[1].startswith("-") and len(token[1]) > 1:
            # -labels.app:web  (negation prefix)
            self.tokens[self.pos - 1] = ("word", token[1][1:])
            self.pos -= 1
            inner = self.parse_unary()
            return lambda r: not inner(r)
        if token[0] == "lparen":
            inner = self.parse_or()
            if self.take()[0] != "rparen":
                raise FilterError("missing ')' in filter")
            return inner
        if token[0] not in ("word", "quoted"):
            raise FilterError(f"unexpected {token[1]!r} in filter")
        field = token[1]
        op_token = self.take()
        if op_token[0] == "op" or (op_token[0] == "word" and op_token[1] in ("eq", "ne")):
            op = op_token[1]
        else:
            raise FilterError(f"expected an operator after {field!r}")
        value_token = self.take()
        if value_token[0] not in ("word", "quoted"):
            raise FilterError(f"expected a value after {field} {op}")
        value = value_token[1]
        return lambda r: _compare(_lookup(r, field), op, value)


def compile_filter(text: str | None) -> Predicate:
    """A predicate over a resource's JSON dict; an empty filter matches everything."""
    if not text or not text.strip():
        return lambda r: True
    return _Parser(_tokenize(text)).parse()
