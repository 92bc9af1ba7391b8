import subprocess
import sys

import pytest

import inferd


def test_every_public_name_resolves() -> None:
    for name in inferd.__all__:
        assert getattr(inferd, name) is not None


def test_import_inferd_loads_no_framework_or_server() -> None:
    code = (
        "import sys, inferd; "
        "print(sorted(m for m in ('uvicorn', 'grpc', 'sqlalchemy', 'onnxruntime', 'torch') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = inferd.Nope  # type: ignore[attr-defined]
