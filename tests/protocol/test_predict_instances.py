import numpy as np
import orjson
import pytest

from inferd.errors import InvalidInput
from inferd.protocol._instances import instances_to_inputs
from inferd.protocol.predict import decode_predict_request


def test_rows_become_columns_with_missing_values() -> None:
    columns = instances_to_inputs(
        [
            {"age": 31, "income": 1.5, "country": "DE", "ok": True, "v": [1, 2]},
            {"age": 45, "country": None, "ok": False, "v": [3, 4]},
        ]
    )
    np.testing.assert_array_equal(columns["age"], [31, 45])
    assert columns["age"].dtype == np.int64
    np.testing.assert_array_equal(columns["income"], [1.5, np.nan])
    assert list(columns["country"]) == ["DE", None]
    np.testing.assert_array_equal(columns["ok"], [True, False])
    np.testing.assert_array_equal(columns["v"], [[1, 2], [3, 4]])
    assert list(instances_to_inputs([{"c": "a"}, {"c": "b"}])["c"]) == ["a", "b"]
    assert np.isnan(instances_to_inputs([{"a": None}])["a"]).all()
    assert instances_to_inputs([{"a": 2**70}])["a"].dtype == np.float64


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([], "instances"),
        ({"a": 1}, "instances"),
        ([{"a": 1}, 3], r"instances\[1\]"),
        ([{"a": 1}, {}], r"instances\[1\]"),
        ([{"a": 1}, {"a": "x"}], r"instances\[\*\]\.a"),
        ([{"a": True}, {"b": 1}], r"instances\[\*\]\.a"),
        ([{"a": [1]}, {"a": [1, 2]}], r"instances\[\*\]\.a"),
        ([{"a": {"b": 1}}], r"instances\[\*\]\.a"),
    ],
)
def test_malformed_instances_are_named(raw: object, field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        instances_to_inputs(raw)


def test_predict_accepts_instances_instead_of_input_data() -> None:
    body = {"model_name": "m", "instances": [{"age": 3, "country": "DE"}]}
    request = decode_predict_request(orjson.dumps(body))
    assert list(request.inputs) == ["age", "country"]
    assert not request.typed
    both = {**body, "input_data": {"x": [1]}}
    with pytest.raises(InvalidInput, match="either input_data or instances"):
        decode_predict_request(orjson.dumps(both))
