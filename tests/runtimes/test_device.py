"""Device choice, out-of-memory errors and GPU discovery, with the GPUs faked at the driver."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.runtimes import AffineRuntime

from inferd.errors import ModelLoadError
from inferd.runtimes import _device
from inferd.runtimes._device import (
    check_fits,
    choose_device,
    format_bytes,
    gpu_index,
    out_of_memory,
    visible_free_bytes,
)


def runtime(device: str) -> AffineRuntime:
    fake = AffineRuntime()
    fake.requested_device = device
    fake.artifact = Path("/models/fake/3/model.pt")
    return fake


@pytest.mark.parametrize(
    ("requested", "free", "chosen"),
    [
        ("cpu", [10, 20], "cpu"),
        ("auto", [], "cpu"),
        ("auto", [10, 30, 20], "cuda:1"),
        ("auto", [None, None], "cuda:0"),
        ("auto", [None, 5], "cuda:1"),
        ("cuda", [10], "cuda:0"),
        ("cuda:1", [10, 20], "cuda:1"),
    ],
)
def test_choose_device(requested: str, free: list[int | None], chosen: str) -> None:
    assert choose_device(runtime(requested), free, "Torch") == chosen


@pytest.mark.parametrize(
    ("requested", "free", "fragment"),
    [
        ("cuda:2", [10, 20], "'cuda:2' requested but Torch sees 2 GPU(s)"),
        ("cuda:0", [], "'cuda:0' requested but Torch sees no GPU"),
        ("tpu", [], "expected auto, cpu or cuda:N, got 'tpu'"),
    ],
)
def test_unavailable_devices_name_model_and_device(
    requested: str, free: list[int | None], fragment: str
) -> None:
    with pytest.raises(ModelLoadError) as info:
        choose_device(runtime(requested), free, "Torch")
    assert "model 'fake' version 3" in str(info.value)
    assert fragment in str(info.value)


def test_out_of_memory_names_model_device_and_bytes() -> None:
    err = out_of_memory(runtime("cuda:0"), "cuda:0", 3 * 1024**3, 1024**3, "CUDA out of memory")
    message = str(err)
    for text in ["model 'fake'", "out of memory on cuda:0", "3.0 GiB", "(3221225472 bytes)",
                 "1.0 GiB free", "CUDA out of memory"]:  # fmt: skip
        assert text in message


def test_check_fits_only_fails_a_gpu_that_is_known_to_be_too_small() -> None:
    check_fits(runtime("auto"), "cpu", 100, 1)
    check_fits(runtime("auto"), "cuda:0", 100, None)
    check_fits(runtime("auto"), "cuda:0", 100, 100)
    with pytest.raises(ModelLoadError, match="needs about 100 B"):
        check_fits(runtime("auto"), "cuda:0", 100, 99)


def test_format_bytes_and_gpu_index() -> None:
    assert [format_bytes(n) for n in (5, 1536, 5 * 1024**2, 2**40)] == [
        "5 B", "1.5 KiB", "5.0 MiB", "1024.0 GiB",
    ]  # fmt: skip
    assert (gpu_index("cpu"), gpu_index("cuda"), gpu_index("cuda:3")) == (None, 0, 3)


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    # NVML (the driver) is the boundary: three physical GPUs.
    monkeypatch.setattr(_device, "_nvml_free_bytes", lambda: [100, 200, 300])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_free_bytes() == [100, 200, 300]
    assert visible_free_bytes(count=2) == [100, 200]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    assert visible_free_bytes() == [300, 100]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,7,0")  # CUDA stops at an invalid index
    assert visible_free_bytes() == [200]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-6f3c,GPU-91aa")
    assert visible_free_bytes(count=2) == [None, None]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_free_bytes() == []


def test_without_a_driver_no_gpu_is_seen() -> None:
    if _device._nvml_free_bytes():
        pytest.skip("this machine has an NVIDIA driver")
    assert visible_free_bytes() == []
