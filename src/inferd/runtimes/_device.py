"""Device placement shared by the runtimes: ``auto``, ``cpu`` or ``cuda:N``.

Each runtime asks its framework which GPUs it sees and how much memory each has free, then
calls :func:`choose_device`: ``auto`` takes the GPU with the most free memory and falls back to
the CPU when there is none; ``cuda:N`` fails the load, naming the model and the device, when
the framework does not see GPU N. :func:`out_of_memory` builds the error for a model that does
not fit, naming the model, the device and the bytes it needed.

Frameworks without a free-memory query (TensorFlow, XGBoost) use NVML through ``ctypes``
(:func:`visible_free_bytes`): the driver's library, no extra package.
"""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Sequence

from inferd.errors import ModelLoadError
from inferd.runtimes.base import Runtime

_CUDA = re.compile(r"cuda(?::(\d+))?")


def requested_index(runtime: Runtime) -> int | None:
    """The GPU index of a ``cuda[:N]`` request; None for ``auto`` and ``cpu``.

    Raises:
        ModelLoadError: the device is none of auto, cpu, cuda, cuda:N.
    """
    requested = runtime.requested_device
    if requested in ("auto", "cpu"):
        return None
    match = _CUDA.fullmatch(requested)
    if match is None:
        raise runtime.load_error(f"device: expected auto, cpu or cuda:N, got {requested!r}")
    return int(match.group(1) or 0)


def choose_device(runtime: Runtime, free_bytes: Sequence[int | None], framework: str) -> str:
    """Pick ``cpu`` or ``cuda:N`` for a runtime.

    Args:
        runtime: the runtime being loaded (its ``requested_device`` and names).
        free_bytes: free memory of each GPU the framework sees, None where unknown; empty
            when it sees none.
        framework: the framework's name, for the error message.

    Returns:
        ``cpu`` or ``cuda:N``.

    Raises:
        ModelLoadError: a ``cuda:N`` the framework does not see.
    """
    index = requested_index(runtime)
    if runtime.requested_device == "cpu":
        return "cpu"
    if index is None:  # auto
        if not free_bytes:
            return "cpu"
        known = [(free if free is not None else -1, -i) for i, free in enumerate(free_bytes)]
        return f"cuda:{-max(known)[1]}"
    if index >= len(free_bytes):
        seen = f"{len(free_bytes)} GPU(s)" if free_bytes else "no GPU"
        raise runtime.load_error(
            f"device 'cuda:{index}' requested but {framework} sees {seen}; "
            "check the driver and the framework's CUDA build, or set device: auto or cpu"
        )
    return f"cuda:{index}"


def gpu_index(device: str) -> int | None:
    """N of ``cuda:N``; None for ``cpu``."""
    match = _CUDA.fullmatch(device)
    return None if match is None else int(match.group(1) or 0)


def format_bytes(count: int) -> str:
    """``1536`` -> ``1.5 KiB``: sizes in error messages people read."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def out_of_memory(
    runtime: Runtime, device: str, needed: int, free: int | None = None, detail: str = ""
) -> ModelLoadError:
    """The load error of a model that does not fit on its device.

    Args:
        runtime: the runtime that failed to load.
        device: ``cpu`` or ``cuda:N``.
        needed: bytes the model needed (the framework's figure, or the artifact's size).
        free: bytes free on the device, when known.
        detail: the framework's own message, if any.
    """
    have = f", {format_bytes(free)} free" if free is not None else ""
    more = f" ({detail})" if detail else ""
    return runtime.load_error(
        f"out of memory on {device}: needs about {format_bytes(needed)} "
        f"({needed} bytes){have}{more}; free memory, unload other models, or choose another "
        "device in model.yaml"
    )


def check_fits(runtime: Runtime, device: str, needed: int, free: int | None) -> None:
    """Fail before loading when a GPU clearly lacks the memory ``needed``.

    Raises:
        ModelLoadError: from :func:`out_of_memory`.
    """
    if device != "cpu" and free is not None and needed > free:
        raise out_of_memory(runtime, device, needed, free)


class _NvmlMemory(ctypes.Structure):
    _fields_ = [
        ("total", ctypes.c_ulonglong),
        ("free", ctypes.c_ulonglong),
        ("used", ctypes.c_ulonglong),
    ]


def _nvml_free_bytes() -> list[int]:
    """Free bytes of every physical GPU, in NVML's order; empty without the NVIDIA driver."""
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return []
    if nvml.nvmlInit_v2() != 0:
        return []
    try:
        count = ctypes.c_uint(0)
        if nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
            return []
        free: list[int] = []
        for index in range(count.value):
            handle = ctypes.c_void_p()
            memory = _NvmlMemory()
            if nvml.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) != 0:
                return []
            if nvml.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory)) != 0:
                return []
            free.append(int(memory.free))
        return free
    finally:
        nvml.nvmlShutdown()


def visible_free_bytes(count: int | None = None) -> list[int | None]:
    """Free bytes of each GPU a CUDA framework sees, in its order.

    NVML numbers GPUs by PCI bus while CUDA numbers the visible ones, so the numbers are
    mapped through ``CUDA_VISIBLE_DEVICES`` when it lists indices; where the mapping is
    unknown (UUIDs in the variable) the GPUs are listed with unknown free memory.

    Args:
        count: how many GPUs the framework sees, when it can say; None to trust NVML.
    """
    physical = _nvml_free_bytes()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    mapped: list[int | None]
    if visible is None:
        mapped = list(physical)
    elif all(part.strip().isdigit() for part in visible.split(",") if part.strip()):
        ids = [int(part) for part in visible.split(",") if part.strip()]
        # CUDA stops at the first invalid index.
        mapped = []
        for gpu in ids:
            if gpu >= len(physical):
                break
            mapped.append(physical[gpu])
    else:
        mapped = [None] * len(physical)
    if count is None:
        return mapped
    return (mapped + [None] * count)[:count]
