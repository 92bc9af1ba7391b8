from typing import Any

import pytest

from inferd.config import parse_model_config
from inferd.errors import ConfigError
from inferd.preprocess.spec import PreprocessingConfig


def parse(features: list[dict[str, Any]], **extra: Any) -> PreprocessingConfig:
    return PreprocessingConfig.model_validate({"features": features, **extra})


def test_rules_parse_with_their_shorthands() -> None:
    config = parse(
        [
            {"name": "age", "impute": 30, "clip": [0, None], "scale": {"mean": 40, "std": 10}},
            {"name": "income", "impute": {"mean": 5.5}, "scale": {"min": 0, "max": 10}},
            {"name": "country", "one_hot": {"categories": ["DE", "FR"], "unknown": "ignore"}},
            {"name": "band", "column": "age", "bucketize": [18, 65], "one_hot":
             {"categories": [0, 1, 2]}},
        ]
    )  # fmt: skip
    age, income, country, band = config.features
    assert age.impute is not None
    assert age.impute.value == 30
    assert income.impute is not None
    assert income.impute.value == 5.5
    assert age.scale is not None
    assert age.scale.kind == "standard"
    assert income.scale is not None
    assert income.scale.kind == "minmax"
    assert country.categorical
    assert not band.categorical
    assert country.output_names() == ["country=DE", "country=FR"]
    assert config.width == 1 + 1 + 2 + 3


@pytest.mark.parametrize(
    ("features", "problem"),
    [
        ([{"name": "a", "scale": {"mean": 1}}], r"expected \{mean, std\}"),
        ([{"name": "a", "scale": {"mean": 1, "std": 2, "min": 0}}], "got keys"),
        ([{"name": "a", "scale": {"mean": 1, "std": 0}}], "greater than 0"),
        ([{"name": "a", "scale": {"min": 2, "max": 1}}], "max > min"),
        ([{"name": "a", "impute": {"mean": 1, "constant": 2}}], "exactly one"),
        ([{"name": "a", "impute": "x"}], "text impute constant needs one_hot"),
        ([{"name": "a", "clip": [5, 1]}], "low <= high"),
        ([{"name": "a", "bucketize": [1, 1]}], "strictly increasing"),
        ([{"name": "a", "one_hot": {"categories": []}}], "at least 1 item"),
        ([{"name": "a", "one_hot": {"categories": ["x", "x"]}}], "unique categories"),
        ([{"name": "a", "one_hot": {"categories": ["x", 1]}}], "all text or all integers"),
        ([{"name": "a", "one_hot": {"categories": ["x"], "unknown": "drop"}}], "'error' or"),
        ([{"name": "a", "one_hot": {"categories": ["x"]}, "scale": {"mean": 0, "std": 1}}],
         "drop scale and clip"),
        ([{"name": "a", "expr": "b * 2", "one_hot": {"categories": ["x"]}}],
         "integer categories"),
        ([{"name": "a", "column": "b", "expr": "b"}], "'column' or 'expr'"),
        ([{"name": "a", "expr": "os.system(1)"}], "unknown function"),
        ([{"name": "a"}, {"name": "a"}], "'a' twice"),
        ([{"name": "a", "sclae": {}}], "Extra inputs"),
        ([], "at least 1 item"),
    ],
)  # fmt: skip
def test_bad_blocks_are_refused_by_name(features: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse(features)


def test_model_yaml_block_fails_the_load_naming_the_field() -> None:
    data = {"platform": "onnx", "preprocessing": {"features": [{"name": "a", "expr": "a.b"}]}}
    with pytest.raises(ConfigError) as caught:
        parse_model_config(data, "m/model.yaml", "m")
    message = caught.value.message
    assert message.startswith("m/model.yaml: field 'preprocessing.features.0.expr': ")
    assert "Attribute is not allowed" in message


def test_model_yaml_without_the_block_has_none() -> None:
    assert parse_model_config({"platform": "onnx"}, "m", "m").preprocessing is None
