"""Safe arithmetic expressions over named columns, compiled to numpy closures.

``log1p(income)``, ``a / b``, ``age * 12``, ``where(age < 18, 0, income)``: parsed with
:mod:`ast` and checked against a whitelist of node types and functions; nothing is ever
passed to ``eval``. Every value is a float64 array (comparisons give 0.0 / 1.0), so an
expression runs as a handful of vectorised numpy calls per batch.

Allowed: numbers, column names, ``+ - * / // % **``, unary ``-``/``+``, one comparison
(``< <= > >= == !=``), and the functions in :data:`FUNCTIONS`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

Columns = Mapping[str, np.ndarray]
Evaluate = Callable[[Columns], Any]  # an array, or a float for a constant

MAX_LENGTH = 1_000
MAX_NODES = 200

# name -> (numpy function, number of arguments)
FUNCTIONS: dict[str, tuple[Callable[..., Any], int]] = {
    "log": (np.log, 1),
    "log1p": (np.log1p, 1),
    "log2": (np.log2, 1),
    "log10": (np.log10, 1),
    "exp": (np.exp, 1),
    "expm1": (np.expm1, 1),
    "sqrt": (np.sqrt, 1),
    "abs": (np.abs, 1),
    "floor": (np.floor, 1),
    "ceil": (np.ceil, 1),
    "isnan": (lambda v: np.isnan(v).astype(np.float64), 1),
    "min": (np.minimum, 2),
    "max": (np.maximum, 2),
    "where": (lambda c, a, b: np.where(np.asarray(c) != 0, a, b), 3),
}

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide,
    ast.Mod: np.mod,
    ast.Pow: np.power,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
}


def parse_expression(text: str) -> ast.expr:
    """Parse and check ``text``; return its AST body.

    Raises:
        ValueError: a syntax error, or a construct outside the whitelist, named.
    """
    if len(text) > MAX_LENGTH:
        raise ValueError(f"expression: expected at most {MAX_LENGTH} characters, got {len(text)}")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as err:
        raise ValueError(f"expression {text!r}: not valid syntax ({err.msg})") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise ValueError(f"expression {text!r}: expected at most {MAX_NODES} nodes")
    for node in nodes:
        _check(node, text)
    return tree.body


def _check(node: ast.AST, text: str) -> None:
    where = f"expression {text!r}"
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS:
            shown = name or ast.unparse(node.func)
            raise ValueError(f"{where}: unknown function '{shown}', expected one of "
                             f"{sorted(FUNCTIONS)}")  # fmt: skip
        arity = FUNCTIONS[name][1]
        if (
            node.keywords
            or len(node.args) != arity
            or any(isinstance(a, ast.Starred) for a in node.args)
        ):
            raise ValueError(f"{where}: {name}() takes {arity} positional argument(s)")
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ValueError(f"{where}: only numbers may appear as constants, got "
                             f"{node.value!r}")  # fmt: skip
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise ValueError(f"{where}: operator {type(node.op).__name__} is not allowed")
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.USub | ast.UAdd):
            raise ValueError(f"{where}: operator {type(node.op).__name__} is not allowed")
    elif isinstance(node, ast.Compare):
        if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARE:
            raise ValueError(f"{where}: one comparison (< <= > >= == !=) at a time")
    elif not isinstance(node, ast.Expression | ast.Name | ast.Load | ast.operator
                        | ast.unaryop | ast.cmpop):  # fmt: skip
        kind = type(node).__name__
        raise ValueError(f"{where}: {kind} is not allowed (numbers, column names, "
                         "arithmetic, comparisons and the listed functions only)")  # fmt: skip


def column_names(text: str) -> list[str]:
    """Columns an expression reads, in order of first appearance (functions excluded)."""
    body = parse_expression(text)
    calls = {id(n.func) for n in ast.walk(body) if isinstance(n, ast.Call)}
    found = [n for n in ast.walk(body) if isinstance(n, ast.Name) and id(n) not in calls]
    names: list[str] = []
    for node in sorted(found, key=lambda n: (n.lineno, n.col_offset)):  # walk() is breadth-first
        if node.id not in names:
            names.append(node.id)
    return names


def compile_expression(text: str) -> Evaluate:
    """A closure computing ``text`` from float64 columns (checked as :func:`parse_expression`)."""
    return _compile(parse_expression(text))


def _compile(node: ast.expr) -> Evaluate:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        value = float(node.value)
        return lambda columns: value
    if isinstance(node, ast.Name):
        name = node.id
        return lambda columns: columns[name]
    if isinstance(node, ast.UnaryOp):
        operand = _compile(node.operand)
        if isinstance(node.op, ast.USub):
            return lambda columns: np.negative(operand(columns))
        return operand
    if isinstance(node, ast.BinOp):
        op, left, right = _BINARY[type(node.op)], _compile(node.left), _compile(node.right)
        return lambda columns: op(left(columns), right(columns))
    if isinstance(node, ast.Compare):
        cmp, left, right = (_COMPARE[type(node.ops[0])], _compile(node.left),
                            _compile(node.comparators[0]))  # fmt: skip
        return lambda columns: np.asarray(cmp(left(columns), right(columns)), dtype=np.float64)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        function = FUNCTIONS[node.func.id][0]
        args = [_compile(a) for a in node.args]
        return lambda columns: function(*(a(columns) for a in args))
    raise ValueError(f"expression: {type(node).__name__} is not allowed")  # checked before
