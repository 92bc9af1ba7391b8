"""``inferd models drift`` and drift references for ``inferd models``.

    inferd models drift NAME [--version N] [--json]     check drift now, per version
    inferd models reference NAME VERSION FILE [--categorical C ...]
    inferd models register NAME ARTIFACT --reference FILE [--categorical C ...]

A reference file (.csv or .parquet, a path or an fsspec URI) is read here and sent as a
profile of at most a few hundred KB (a 2,000-row sample per numeric feature and category
counts), so a large training set never travels to the server.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from inferd.errors import InvalidInput
from inferd.monitoring.drift_dataset import read_columns
from inferd.monitoring.drift_profile import Profile


def add_parsers(sub: Any) -> None:
    """Add ``drift`` and ``reference`` to the ``models`` subcommands."""
    drift = sub.add_parser("drift", help="check a model's inputs and outputs for drift now")
    drift.add_argument("name")
    drift.add_argument("--version", type=int, help="only this version")
    # Also accepted after the subcommand (``inferd models drift m --json``).
    drift.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    reference = sub.add_parser("reference", help="set a version's drift reference dataset")
    reference.add_argument("name")
    reference.add_argument("version", type=int)
    reference.add_argument("file", help=".csv or .parquet (path or URI)")
    add_reference_options(reference, required=True)


def add_reference_options(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """``--reference`` (unless positional) and ``--categorical``."""
    if not required:
        parser.add_argument("--reference", help="drift reference dataset (.csv or .parquet)")
    parser.add_argument("--categorical", nargs="*", default=[], metavar="COLUMN",
                        help="numeric columns to treat as categories")  # fmt: skip


def reference_body(file: str, categorical: list[str]) -> dict[str, Any]:
    """The PUT body for a reference file: its profile, computed here.

    Raises:
        InvalidInput: the file cannot be read or has no rows.
    """
    uri = file if "://" in file else str(Path(file).expanduser().resolve())
    try:
        profile = Profile.of(read_columns(uri), categorical=categorical)
    except ValueError as err:
        raise InvalidInput("--reference", "a readable .csv or .parquet file", str(err)) from None
    return {"profile": profile.to_dict()}


def reference_path(name: str, version: int) -> str:
    return f"/v1/models/{name}/versions/{version}/reference"


def drift_query(args: argparse.Namespace) -> dict[str, Any]:
    # The CLI asks for a check now: it is run by a person who wants the current state.
    return {"version": None if args.version is None else str(args.version), "refresh": "true"}


def human(result: dict[str, Any]) -> str:
    """A few lines per version: status, window, the drifted features."""
    lines = []
    for v in result.get("versions", []):
        head = f"{v['model']} version {v['version']}: {v['status']}, {v['samples']} rows"
        reference = v.get("reference") or {}
        if reference:
            head += f" (reference: {reference.get('source')}, {reference.get('rows')} rows)"
        lines.append(head)
        for f in v.get("features", []):
            if f["drifted"]:
                lines.append(f"  {f['kind']:<6} {f['name']:<24} {f['test']:<10} "
                             f"p_adj={f['p_adjusted']:.3g} psi={f['psi']:.3f}")  # fmt: skip
        mmd = v.get("multivariate")
        if mmd:
            lines.append(f"  mmd p_adj={mmd['p_adjusted']:.3g}{' DRIFT' if mmd['drifted'] else ''}")
    return "\n".join(lines) or f"{result.get('model')}: no version is watched for drift"
