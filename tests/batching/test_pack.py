import numpy as np
import pytest

from inferd.batching.pack import pack


def rows(n: int, width: int = 2, dtype: type = np.float32) -> dict[str, np.ndarray]:
    return {"x": np.arange(n * width, dtype=dtype).reshape(n, width)}


def test_requests_that_agree_past_the_batch_dimension_share_a_pack_up_to_max_rows() -> None:
    inputs = [rows(3), rows(2), rows(4), rows(1)]
    packs = pack(inputs, max_rows=8)
    assert [(p.members, p.rows) for p in packs] == [([0, 1], [3, 2]), ([2, 3], [4, 1])]
    np.testing.assert_array_equal(
        packs[0].inputs()["x"], np.concatenate([rows(3)["x"], rows(2)["x"]])
    )


def test_other_shapes_and_dtypes_go_in_other_packs_and_none_entries_are_skipped() -> None:
    inputs = [rows(1), rows(1, width=3), None, rows(1, dtype=np.float64), rows(1)]
    packs = pack(inputs, max_rows=32)
    assert sorted(p.members for p in packs) == [[0, 4], [1], [3]]


def test_no_batching_or_a_request_as_big_as_a_batch_travels_alone() -> None:
    assert [p.members for p in pack([rows(1), rows(1)], max_rows=1)] == [[0], [1]]
    assert [p.members for p in pack([rows(1), rows(8), rows(1)], max_rows=8)] == [[0, 2], [1]]
    scalar = {"x": np.float32(1.0) * np.ones(())}
    ragged = {"a": np.zeros((2, 1)), "b": np.zeros((3, 1))}
    assert [p.members for p in pack([scalar, ragged, rows(1)], max_rows=8)] == [[0], [1], [2]]


def test_unpack_gives_each_member_its_rows_and_names_a_bad_output() -> None:
    (only,) = pack([rows(2), rows(1), rows(3)], max_rows=16)
    outputs = {"y": np.arange(6), "z": np.arange(6) * 10}
    parts = only.unpack(outputs)
    assert [p["y"].tolist() for p in parts] == [[0, 1], [2], [3, 4, 5]]
    assert [p["z"].tolist() for p in parts] == [[0, 10], [20], [30, 40, 50]]
    with pytest.raises(ValueError, match=r"output 'y' has shape \(5,\), expected 6 rows"):
        only.unpack({"y": np.arange(5)})
    (alone,) = pack([rows(2)], max_rows=16)
    assert alone.unpack({"y": np.arange(7)})[0]["y"].size == 7  # one member: as answered
