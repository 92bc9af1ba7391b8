from typing import Any

import numpy as np
import pytest

from inferd.errors import ConfigError, PreprocessingError
from inferd.preprocess import PreprocessingConfig, Preprocessor, compile_preprocessing
from inferd.types import Signature, TensorSpec


def signature(*shape: int, datatype: str = "FP64", extra: tuple[TensorSpec, ...] = ()) -> Signature:
    inputs = (TensorSpec("x", datatype, shape), *extra)
    return Signature(inputs, (TensorSpec("y", "FP32", (-1,)),))


def compiled(features: list[dict[str, Any]], width: int | None = None) -> Preprocessor:
    config = PreprocessingConfig.model_validate({"features": features})
    return compile_preprocessing(config, signature(-1, width or config.width))


def column(features: list[dict[str, Any]], **raw: Any) -> np.ndarray:
    out = compiled(features).apply({k: np.asarray(v) for k, v in raw.items()})["x"]
    return np.asarray(out)


def test_standard_and_minmax_scale() -> None:
    features = [{"name": "a", "scale": {"mean": 10, "std": 4}},
                {"name": "b", "scale": {"min": -1, "max": 3}}]  # fmt: skip
    got = column(features, a=[2.0, 10, 14], b=[-1, 1, 3])
    np.testing.assert_allclose(got, [[-2.0, 0.0], [0.0, 0.5], [1.0, 1.0]])


def test_impute_then_clip_then_scale() -> None:
    got = column(
        [{"name": "a", "impute": {"mean": 7}, "clip": [0, 8], "scale": {"mean": 4, "std": 2}}],
        a=[np.nan, -3.0, 100.0, 5.0],
    )
    # 7 -> (7-4)/2; -3 -> 0 -> -2; 100 -> 8 -> 2; 5 -> 0.5
    np.testing.assert_allclose(got[:, 0], [1.5, -2.0, 2.0, 0.5])


def test_clip_with_one_open_side_and_nan_kept_without_impute() -> None:
    got = column([{"name": "a", "clip": [None, 1]}], a=[-5.0, 3.0, np.nan])
    np.testing.assert_array_equal(got[:2, 0], [-5.0, 1.0])
    assert np.isnan(got[2, 0])


def test_bucketize_right_open_buckets() -> None:
    got = column([{"name": "a", "bucketize": [18, 30, 50]}], a=[0, 17.9, 18, 29, 30, 50, 99])
    np.testing.assert_array_equal(got[:, 0], [0, 0, 1, 1, 2, 3, 3])


def test_one_hot_in_declared_order_with_bytes_text_and_integers() -> None:
    features = [{"name": "c", "one_hot": {"categories": ["FR", "DE", "AT"]}}]
    expected = [[0, 1, 0], [1, 0, 0], [0, 0, 1]]
    for values in (["DE", "FR", "AT"], np.array([b"DE", b"FR", b"AT"], dtype=object)):
        np.testing.assert_array_equal(column(features, c=values), expected)
    ints = [{"name": "d", "one_hot": {"categories": [3, 1]}}]
    np.testing.assert_array_equal(column(ints, d=[1, 3, 1]), [[0, 1], [1, 0], [0, 1]])


def test_one_hot_unknown_ignore_is_all_zeros_and_error_names_it() -> None:
    ignore = [{"name": "c", "one_hot": {"categories": ["DE", "FR"], "unknown": "ignore"}}]
    np.testing.assert_array_equal(column(ignore, c=["XX", "FR"]), [[0, 0], [0, 1]])
    refuse = [{"name": "country", "one_hot": {"categories": ["DE", "FR"]}}]
    with pytest.raises(PreprocessingError) as caught:
        column(refuse, country=["DE", "XX"])
    assert caught.value.message == (
        "preprocessing: feature 'country': one_hot: unknown category 'XX', "
        "expected one of ['DE', 'FR']"
    )
    assert caught.value.http_status == 400


def test_one_hot_missing_text_is_imputed_or_refused() -> None:
    values = np.array(["DE", None], dtype=object)
    imputed = [{"name": "c", "impute": "FR", "one_hot": {"categories": ["DE", "FR"]}}]
    np.testing.assert_array_equal(column(imputed, c=values), [[1, 0], [0, 1]])
    with pytest.raises(PreprocessingError, match="one_hot: missing value in row 1"):
        column([{"name": "c", "one_hot": {"categories": ["DE", "FR"]}}], c=values)


def test_expression_feeds_the_rules_and_bucket_one_hot() -> None:
    got = column(
        [{"name": "r", "expr": "a / b", "clip": [0, 2]},
         {"name": "m", "expr": "age * 12"},
         {"name": "l", "expr": "log1p(income)", "scale": {"mean": 0, "std": 2}},
         {"name": "band", "column": "age", "bucketize": [18], "one_hot": {"categories": [0, 1]}}],
        a=[1.0, 9.0], b=[2.0, 3.0], age=[10, 20], income=[0.0, np.e - 1],
    )  # fmt: skip
    np.testing.assert_allclose(got, [[0.5, 120, 0.0, 1, 0], [2.0, 240, 0.5, 0, 1]])


def test_output_dtype_and_rank_follow_the_model_input() -> None:
    config = PreprocessingConfig.model_validate({"features": [{"name": "a", "expr": "a + 1"}]})
    flat = compile_preprocessing(config, signature(-1, datatype="FP32"))
    out = flat.apply({"a": np.array([1, 2])})["x"]
    assert out.dtype == np.float32
    assert out.shape == (2,)
    np.testing.assert_array_equal(out, [2, 3])


def test_raw_columns_and_feature_names() -> None:
    pre = compiled([{"name": "age"}, {"name": "i", "expr": "log1p(income) + age"},
                    {"name": "c", "one_hot": {"categories": ["a", "b"]}}])  # fmt: skip
    assert [(c.name, c.kind) for c in pre.columns] == [
        ("age", "number"), ("income", "number"), ("c", "text"),
    ]  # fmt: skip
    assert pre.features == ("age", "i", "c=a", "c=b")
    assert [s.to_dict() for s in pre.input_specs][2] == {
        "name": "c", "datatype": "BYTES", "shape": [-1],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("sig", "features", "problem"),
    [
        (signature(-1, 3), [{"name": "a"}], r"1 feature columns declared .* shape \[-1, 3\]"),
        (signature(-1, 1, datatype="INT64"), [{"name": "a"}], "expected a float datatype"),
        (signature(-1, 1, extra=(TensorSpec("z", "FP32", (-1,)),)), [{"name": "a"}],
         "name the one the features fill"),
        (signature(-1, 1, extra=(TensorSpec("a", "FP32", (-1,)),)), [{"name": "a"}],
         "share a name with other model inputs"),
        (signature(-1, 3), [{"name": "a", "one_hot": {"categories": ["x"]}},
                            {"name": "b", "column": "a", "clip": [0, 1]},
                            {"name": "c", "column": "a"}], "used as text and as number"),
    ],
)  # fmt: skip
def test_blocks_that_do_not_fit_the_model_fail_the_load(
    sig: Signature, features: list[dict[str, Any]], problem: str
) -> None:
    named = {"input": "x"} if len(sig.inputs) > 1 and "share" in problem else {}
    config = PreprocessingConfig.model_validate({"features": features, **named})
    with pytest.raises(ConfigError, match=problem):
        compile_preprocessing(config, sig)


def test_named_input_and_passthrough_inputs() -> None:
    extra = (TensorSpec("emb", "FP32", (-1, 2)),)
    config = PreprocessingConfig.model_validate({"input": "x", "features": [{"name": "a"}]})
    pre = compile_preprocessing(config, signature(-1, 1, extra=extra))
    emb = np.ones((2, 2), dtype=np.float32)
    inputs = pre.apply({"a": np.array([1.0, 2.0]), "emb": emb})
    np.testing.assert_array_equal(inputs["x"], [[1.0], [2.0]])
    assert inputs["emb"] is emb


def test_a_column_every_reader_imputes_may_be_left_out() -> None:
    pre = compiled([{"name": "a", "impute": {"mean": 3}, "scale": {"mean": 1, "std": 2}},
                    {"name": "c", "impute": "FR", "one_hot": {"categories": ["DE", "FR"]}},
                    {"name": "b"}])  # fmt: skip
    assert [c.optional for c in pre.columns] == [True, True, False]
    np.testing.assert_array_equal(pre.apply({"b": np.array([7.0, 8.0])})["x"],
                                  [[1, 0, 1, 7], [1, 0, 1, 8]])  # fmt: skip
    with pytest.raises(PreprocessingError, match=r"inputs: missing \['b'\]"):
        pre.apply({"a": np.array([1.0])})
    with pytest.raises(PreprocessingError, match=r"inputs: missing \['b'\]"):
        pre.apply({})


@pytest.mark.parametrize("count", [3, 12])  # compared one by one, and binary-searched
def test_one_hot_of_few_and_many_categories_agree(count: int) -> None:
    categories = [f"c{i:02d}" for i in range(count)][::-1]
    values = ["c01", "zz", "c02", "c01"]
    ignore = [{"name": "k", "one_hot": {"categories": categories, "unknown": "ignore"}}]
    expected = np.zeros((4, count))
    for row, value in enumerate(values):
        if value in categories:
            expected[row, categories.index(value)] = 1
    np.testing.assert_array_equal(column(ignore, k=values), expected)
    with pytest.raises(PreprocessingError, match="unknown category 'zz'"):
        column([{"name": "k", "one_hot": {"categories": categories}}], k=values)
