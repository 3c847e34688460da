"""The metric selectors in a PromQL expression, for checking a dashboard's queries offline.

Not a full parser: a tokenizer that knows enough of the grammar to tell a metric name from
everything else that looks like a word. Function and aggregation names (followed by a
parenthesis), keywords, label names inside `{...}` and in `by (...)`/`on (...)` lists,
strings, numbers, durations, ranges (`[5m]`, `[1h:5m]`) and Grafana variables (`$x`,
`${x}`, `[[x]]`) are skipped; every other word is a metric name, returned with the label
matchers that follow it. A word followed by a parenthesis that is not a known function is
an error, so a misspelt function cannot pass for a metric either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

AGGREGATIONS = frozenset(
    {
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    }
)
FUNCTIONS = frozenset(
    {
        "abs",
        "absent",
        "absent_over_time",
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atanh",
        "avg_over_time",
        "ceil",
        "changes",
        "clamp",
        "clamp_max",
        "clamp_min",
        "cos",
        "cosh",
        "count_over_time",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "days_in_month",
        "deg",
        "delta",
        "deriv",
        "end",
        "double_exponential_smoothing",
        "exp",
        "floor",
        "histogram_avg",
        "histogram_count",
        "histogram_fraction",
        "histogram_quantile",
        "histogram_stddev",
        "histogram_stdvar",
        "histogram_sum",
        "holt_winters",
        "hour",
        "idelta",
        "increase",
        "irate",
        "label_join",
        "label_replace",
        "last_over_time",
        "ln",
        "log10",
        "log2",
        "mad_over_time",
        "max_over_time",
        "min_over_time",
        "minute",
        "month",
        "pi",
        "predict_linear",
        "present_over_time",
        "quantile_over_time",
        "rad",
        "rate",
        "resets",
        "round",
        "scalar",
        "sgn",
        "sin",
        "sinh",
        "sort",
        "sort_by_label",
        "sort_by_label_desc",
        "sort_desc",
        "sqrt",
        "start",
        "stddev_over_time",
        "stdvar_over_time",
        "sum_over_time",
        "tan",
        "tanh",
        "time",
        "timestamp",
        "vector",
        "year",
    }
)
# Followed by a parenthesised list of label names.
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = GROUPING | {"and", "or", "unless", "atan2", "bool", "offset", "inf", "nan"}

_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<variable>\$\{[^}]*\}|\$\w+|\[\[\w+\]\])
    | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:(?:ms|[smhdwy])\d*)*)
    | (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}\[\]@:])
    """,
    re.VERBOSE,
)


class PromQLError(ValueError):
    pass


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, operator, value)

    def has(self, label: str, value: str) -> bool:
        return (label, "=", value) in self.matchers


def tokens(expr: str) -> list[tuple[str, str]]:
    """(kind, text) pairs without whitespace; kind is string, variable, number, name or op."""
    found: list[tuple[str, str]] = []
    position = 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if match is None:
            raise PromQLError(f"unexpected {expr[position : position + 10]!r} at {position}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            found.append((kind, match.group()))
        position = match.end()
    return found


def _unquote(text: str) -> str:
    return text[1:-1]


def selectors(expr: str) -> list[Selector]:
    """Every metric selector in `expr`, in order."""
    items = tokens(expr)
    found: list[Selector] = []
    i = 0

    def skip_to(closing: str, opening: str) -> int:
        """The index after the bracket that closes the one at `i`."""
        depth, j = 0, i
        while j < len(items):
            text = items[j][1]
            if text == opening:
                depth += 1
            elif text == closing:
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
        raise PromQLError(f"unclosed {opening!r} in {expr!r}")

    while i < len(items):
        kind, text = items[i]
        following = items[i + 1][1] if i + 1 < len(items) else ""
        if text == "[":
            i = skip_to("]", "[")  # a range or subquery: durations, variables, steps
            continue
        if text == "{":  # a selector without a name: {__name__="..."}
            matchers, i = _matchers(items, i, expr)
            names = [v for label, op, v in matchers if label == "__name__" and op == "="]
            if not names:
                raise PromQLError(f"a selector without a metric name in {expr!r}")
            found.append(Selector(names[0], matchers))
            continue
        if kind != "name":
            i += 1
            continue
        word = text.lower()
        if word in GROUPING and following == "(":
            i += 1
            i = skip_to(")", "(")  # label names, not metrics
            continue
        if word in KEYWORDS:
            i += 1
            continue
        if following == "(":
            if text not in FUNCTIONS and word not in AGGREGATIONS:
                raise PromQLError(f"unknown function {text!r} in {expr!r}")
            i += 1
            continue
        if word in AGGREGATIONS and following.lower() in GROUPING:
            i += 1  # sum by (le) (...)
            continue
        i += 1
        matchers: tuple[tuple[str, str, str], ...] = ()
        if i < len(items) and items[i][1] == "{":
            matchers, i = _matchers(items, i, expr)
        found.append(Selector(text, matchers))
    return found


def _matchers(
    items: list[tuple[str, str]], start: int, expr: str
) -> tuple[tuple[tuple[str, str, str], ...], int]:
    """The matchers of the `{...}` at `start`, and the index after its `}`."""
    matchers: list[tuple[str, str, str]] = []
    i = start + 1
    while i < len(items) and items[i][1] != "}":
        if items[i][1] == ",":
            i += 1
            continue
        try:
            (label_kind, label), (_, op), (value_kind, value) = items[i : i + 3]
        except ValueError:
            raise PromQLError(f"unclosed '{{' in {expr!r}") from None
        if label_kind not in ("name", "string") or value_kind != "string":
            raise PromQLError(f"bad label matcher {label}{op}{value} in {expr!r}")
        if op not in ("=", "!=", "=~", "!~"):
            raise PromQLError(f"bad matcher operator {op!r} in {expr!r}")
        matchers.append((label.strip("\"'"), op, _unquote(value)))
        i += 3
    if i >= len(items):
        raise PromQLError(f"unclosed '{{' in {expr!r}")
    return tuple(matchers), i + 1


def metric_names(expr: str) -> set[str]:
    return {selector.metric for selector in selectors(expr)}


_LABEL_VALUES = re.compile(r"^\s*label_values\((?:(?P<selector>.*),)?\s*(?P<label>\w+)\s*\)\s*$")


def label_values_selector(query: str) -> str | None:
    """The series selector of a Grafana `label_values(SELECTOR, LABEL)` query, if any."""
    match = _LABEL_VALUES.match(query)
    if match is None:
        raise PromQLError(f"not a label_values query: {query!r}")
    return match.group("selector")
