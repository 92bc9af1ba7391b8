"""What a user asks for when submitting a batch job (CLI flags or the ``POST /v1/jobs`` body).

``parse_spec`` turns validation failures into an :class:`InvalidInput` that names the field,
what was expected and what came.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from inferd.errors import InvalidInput

InputFormat = Literal["auto", "parquet", "csv", "jsonl"]
OutputFormat = Literal["parquet", "jsonl"]
EngineName = Literal["local", "ray"]


class JobSpec(BaseModel):
    """A batch inference job: which model, which files, where the predictions go."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model: str = Field(min_length=1, description="Registered model name.")
    version: int | None = Field(
        None, ge=1, description="Version to use; default production, else the latest usable."
    )
    inputs: list[str] = Field(
        min_length=1, description="Files, folders, globs or fsspec URIs (s3://, gs://, ...)."
    )
    output: str = Field(min_length=1, description="Output folder (local path or fsspec URI).")
    input_format: InputFormat = Field("auto", description="auto guesses from the extension.")
    output_format: OutputFormat = Field("parquet", description="Format of the part files.")
    columns: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Model input -> column names or globs. Default: the column named like the "
        "input, else (one input) every column that is not passed through.",
    )
    passthrough: list[str] = Field(
        default_factory=list, description="Input columns copied next to the predictions."
    )
    batch_size: int = Field(1024, ge=1, le=1 << 20, description="Rows per runtime call.")
    chunk_rows: int = Field(
        65_536, ge=1, le=1 << 26, description="Rows per chunk (unit of resume and output part)."
    )
    engine: EngineName = Field("local", description="local (processes) or ray.")
    parallelism: int = Field(1, ge=1, le=256, description="Worker processes or Ray actors.")
    ray_address: str | None = Field(None, description="Ray cluster address; default a local Ray.")
    max_error_rate: float = Field(
        0.01, ge=0, le=1, description="Share of rows that may fail validation before the job fails."
    )
    nice: int = Field(
        19,
        ge=0,
        le=19,
        description="Niceness of worker processes, so online requests come first; 19 also "
        "runs them under SCHED_IDLE (only when the CPU would otherwise be idle).",
    )
    busy_share: float = Field(
        0.25,
        gt=0,
        le=1,
        description="Share of one CPU each worker may use while its server answers online "
        "requests (jobs inside a server, local engine); 1 turns the cap off.",
    )
    overwrite: bool = Field(False, description="Allow an output folder that is not empty.")

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, patterns in value.items():
            if not name or not patterns or any(not p for p in patterns):
                raise ValueError(f"expected input name -> non-empty column list, got {name!r}")
        return value


def parse_spec(data: Any) -> JobSpec:
    """Validate a job request.

    Raises:
        InvalidInput: naming the first bad field, e.g. ``job.batch_size``.
    """
    if not isinstance(data, dict):
        raise InvalidInput("job", "a JSON object", type(data).__name__)
    try:
        return JobSpec.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(body)"
        got = repr(first.get("input"))[:80] if first["type"] != "missing" else "nothing"
        raise InvalidInput(f"job.{field}", first["msg"].lower(), got) from err


def parse_columns(pairs: list[str]) -> dict[str, list[str]]:
    """Turn ``INPUT=COL[,COL...]`` flags (globs allowed) into the ``columns`` mapping.

    Example: ``["x=feat_*", "ids=user_id"]`` -> ``{"x": ["feat_*"], "ids": ["user_id"]}``.

    Raises:
        InvalidInput: a flag is not ``INPUT=COLUMNS``.
    """
    mapping: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, columns = pair.partition("=")
        patterns = [c.strip() for c in columns.split(",") if c.strip()]
        if not sep or not name.strip() or not patterns:
            raise InvalidInput("--columns", "INPUT=COLUMN[,COLUMN...] (globs allowed)", repr(pair))
        mapping.setdefault(name.strip(), []).extend(patterns)
    return mapping


def parse_list(values: list[str]) -> list[str]:
    """Split repeated, comma-separated flag values (``--passthrough id,ts``)."""
    return [v.strip() for value in values for v in value.split(",") if v.strip()]
