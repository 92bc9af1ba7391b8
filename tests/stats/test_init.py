"""The package's public surface: every export documented, nothing else of inferd imported."""

from __future__ import annotations

import doctest
import subprocess
import sys

import inferd.stats
from inferd.stats import multiple, power, srm


def test_every_export_exists_and_callables_have_docstrings() -> None:
    for name in inferd.stats.__all__:
        value = getattr(inferd.stats, name)
        if callable(value) and not name.isupper() and name not in {"Correction", "Interval"}:
            assert value.__doc__, name


def test_stats_depends_on_no_other_inferd_package() -> None:
    code = (
        "import sys, inferd.stats; "
        "print(sorted(m for m in sys.modules if m.startswith('inferd.') "
        "and not m.startswith('inferd.stats')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_docstring_examples_hold() -> None:
    for module in (inferd.stats, power, srm, multiple):
        result = doctest.testmod(module)
        assert (result.failed, result.attempted > 0) == (0, True), module.__name__
