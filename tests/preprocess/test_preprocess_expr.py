import numpy as np
import pytest

from inferd.preprocess.expr import column_names, compile_expression, parse_expression


def run(text: str, **columns: list[float]) -> np.ndarray:
    arrays = {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}
    with np.errstate(all="ignore"):
        return np.asarray(compile_expression(text)(arrays))


def test_arithmetic_and_functions_match_numpy() -> None:
    income = [0.0, 9.0, 99.0]
    np.testing.assert_allclose(run("log1p(income)", income=income), [0.0, np.log(10), np.log(100)])
    np.testing.assert_allclose(run("a / b", a=[1, 6], b=[2, 3]), [0.5, 2.0])
    np.testing.assert_allclose(run("age * 12", age=[1, 2.5]), [12.0, 30.0])
    np.testing.assert_allclose(run("-a ** 2 + 7 // 2 + 7 % 4", a=[3]), [-9 + 3 + 3])
    np.testing.assert_allclose(run("max(a, 2) - min(a, 2)", a=[1, 5]), [1, 3])
    np.testing.assert_allclose(run("where(age < 18, 0, income)", age=[10, 30], income=[5, 6]),
                               [0, 6])  # fmt: skip
    np.testing.assert_allclose(run("isnan(a) + (a >= 1)", a=[np.nan, 1, 0]), [1, 1, 0])


def test_division_by_zero_is_a_value() -> None:
    assert np.isinf(run("a / b", a=[1], b=[0]))[0]


def test_column_names_in_order_without_functions() -> None:
    assert column_names("log1p(income) / (age + income) + max(age, log)") == [
        "income", "age", "log",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("__import__('os').system('x')", "unknown function"),
        ("a.real", "Attribute is not allowed"),
        ("a[0]", "Subscript is not allowed"),
        ("(lambda: 1)()", "unknown function"),
        ("'text' + a", "only numbers"),
        ("True + a", "only numbers"),
        ("a if b else c", "IfExp is not allowed"),
        ("a < b < c", "one comparison"),
        ("a and b", "BoolOp is not allowed"),
        ("a @ b", "MatMult is not allowed"),
        ("~a", "Invert is not allowed"),
        ("log(a, 2)", r"log\(\) takes 1"),
        ("log(x=a)", r"log\(\) takes 1"),
        ("log1p(income", "not valid syntax"),
        ("a = 1", "not valid syntax"),
        ("+".join(["a"] * 300), "at most 200 nodes"),
        ("a" * 1001, "at most 1000 characters"),
    ],
)
def test_refused_constructs_are_named(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_expression(text)
