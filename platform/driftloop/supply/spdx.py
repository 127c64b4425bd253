"""SPDX licence expressions: parse ``MIT OR (Apache-2.0 AND BSD-3-Clause)`` and decide whether
an allow-list permits it.

Grammar (SPDX 2.3, annex D): ``WITH`` binds tighter than ``AND``, ``AND`` tighter than ``OR``;
operators are upper case (a lower-case ``or`` is not an operator, so free text such as
"MIT or whatever" fails to parse instead of being read as an expression); identifiers are
compared case-insensitively. A licence followed by ``+`` ("or later") is kept as written.

Evaluation: ``A OR B`` is allowed when either side is (the licensee may choose); ``A AND B``
only when both are (both apply); ``L WITH E`` when the whole ``L WITH E`` is listed or ``L``
alone is (an exception only grants extra permissions, it never restricts)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from driftloop.errors import InvalidInputError

_TOKEN = re.compile(r"\s*(?:(\()|(\))|([A-Za-z0-9][A-Za-z0-9.\-]*\+?)|(\S))")
_OPERATORS = ("AND", "OR", "WITH")


class ExpressionError(InvalidInputError):
    """Text that is not an SPDX licence expression."""


@dataclass(frozen=True)
class Licence:
    """One licence identifier, optionally with an exception (``GPL-2.0-only WITH ...``)."""

    id: str
    exception: str | None = None

    def __str__(self) -> str:
        return f"{self.id} WITH {self.exception}" if self.exception else self.id


@dataclass(frozen=True)
class And:
    terms: tuple[Expression, ...]

    def __str__(self) -> str:
        # An OR inside an AND needs parentheses; an AND inside an OR does not (precedence).
        return " AND ".join(f"({t})" if isinstance(t, Or) else str(t) for t in self.terms)


@dataclass(frozen=True)
class Or:
    terms: tuple[Expression, ...]

    def __str__(self) -> str:
        return " OR ".join(str(t) for t in self.terms)


Expression = Licence | And | Or


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:  # only trailing whitespace is left
            break
        if match.group(4) is not None:
            raise ExpressionError(
                f"unexpected character {match.group(4)!r} in licence expression {text!r}"
            )
        out.append(next(g for g in match.groups() if g is not None))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    def fail(self, what: str) -> ExpressionError:
        return ExpressionError(f"{what} in licence expression {self.text!r}")

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise self.fail("unexpected end")
        self.pos += 1
        return token

    def parse(self) -> Expression:
        if not self.tokens:
            raise ExpressionError("empty licence expression")
        expr = self.or_expr()
        if self.peek() is not None:
            raise self.fail(f"unexpected {self.peek()!r}")
        return expr

    def or_expr(self) -> Expression:
        terms = [self.and_expr()]
        while self.peek() == "OR":
            self.take()
            terms.append(self.and_expr())
        return terms[0] if len(terms) == 1 else Or(tuple(terms))

    def and_expr(self) -> Expression:
        terms = [self.with_expr()]
        while self.peek() == "AND":
            self.take()
            terms.append(self.with_expr())
        return terms[0] if len(terms) == 1 else And(tuple(terms))

    def with_expr(self) -> Expression:
        token = self.take()
        if token == "(":
            inner = self.or_expr()
            if self.take() != ")":
                raise self.fail("missing ')'")
            return inner
        if token in _OPERATORS or token == ")":
            raise self.fail(f"unexpected {token!r}")
        if self.peek() == "WITH":
            self.take()
            exception = self.take()
            if exception in _OPERATORS or exception in "()":
                raise self.fail(f"unexpected {exception!r} after WITH")
            return Licence(token, exception)
        return Licence(token)


def parse(text: str) -> Expression:
    """The expression ``text`` (raises :class:`ExpressionError` naming the problem)."""
    return _Parser(text).parse()


def licences(expr: Expression) -> list[Licence]:
    """Every licence named in ``expr``, in order."""
    if isinstance(expr, Licence):
        return [expr]
    return [leaf for term in expr.terms for leaf in licences(term)]


def join_all(ids: Iterable[str]) -> Expression:
    """``a AND b AND ...`` of the distinct ``ids`` (several licences that all apply)."""
    unique = list(dict.fromkeys(ids))
    if not unique:
        raise ExpressionError("no licence to join")
    terms = tuple(parse(i) for i in unique)
    return terms[0] if len(terms) == 1 else And(terms)


@dataclass(frozen=True)
class Verdict:
    """``allowed``, else ``refused``: the licences that make it fail (each not on the list)."""

    allowed: bool
    refused: tuple[str, ...] = ()


def evaluate(expr: Expression, allowed: Iterable[str]) -> Verdict:
    """Whether ``expr`` is permitted by the allow-list ``allowed`` (SPDX ids, or whole
    ``ID WITH EXCEPTION`` entries), compared case-insensitively."""
    allow = {" ".join(a.split()).casefold() for a in allowed}
    return _evaluate(expr, allow)


def _evaluate(expr: Expression, allow: set[str]) -> Verdict:
    if isinstance(expr, Licence):
        ok = str(expr).casefold() in allow or expr.id.casefold() in allow
        return Verdict(ok, () if ok else (str(expr),))
    verdicts = [_evaluate(t, allow) for t in expr.terms]
    if isinstance(expr, Or) and any(v.allowed for v in verdicts):
        return Verdict(True)
    if isinstance(expr, And) and all(v.allowed for v in verdicts):
        return Verdict(True)
    refused = tuple(dict.fromkeys(r for v in verdicts for r in v.refused))
    return Verdict(False, refused)
