"""The ``preprocessing:`` block of ``model.yaml``: declared features and their rules.

    PreprocessingConfig
    ├── input: the model input the features fill (default: the model's only input)
    └── features: list[Feature], in the order of the model's feature axis
        Feature: a raw column (``column``, default its ``name``) or an expression
                 (``expr``), then rules applied in a fixed order:
                 impute -> clip -> bucketize -> scale | one_hot

Example::

    preprocessing:
      features:
        - {name: age, impute: {mean: 38.5}, clip: [0, 100], scale: {mean: 38.5, std: 12.1}}
        - {name: income, expr: "log1p(income)", scale: {min: 0, max: 15}}
        - {name: country, one_hot: {categories: [DE, FR], unknown: ignore}}
        - {name: age_band, column: age, bucketize: [18, 30, 50]}

Validation here is static (shapes of rules, expression syntax); the model's signature is
checked when a version loads (:func:`inferd.preprocess.compile.compile_preprocessing`).
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from inferd.preprocess.expr import parse_expression

Category = str | int


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Impute(_Strict):
    """The value that replaces a missing one (NaN, null, a row without the key)."""

    constant: float | str | None = Field(None, description="A fixed value (number or text).")
    mean: float | None = Field(None, description="The training mean, as given.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            return {"constant": value}
        return value

    @model_validator(mode="after")
    def _one(self) -> Impute:
        if (self.constant is None) == (self.mean is None):
            raise ValueError("set exactly one of 'constant' or 'mean', e.g. {mean: 38.5}")
        return self

    @property
    def value(self) -> float | str:
        return self.mean if self.mean is not None else self.constant  # type: ignore[return-value]


class Scale(_Strict):
    """Standard scaling ``(v - mean) / std`` or min-max scaling ``(v - min) / (max - min)``."""

    mean: float | None = None
    std: float | None = Field(None, gt=0)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Scale:
        standard = (self.mean is not None, self.std is not None)
        minmax = (self.min is not None, self.max is not None)
        if not ((all(standard) and not any(minmax)) or (all(minmax) and not any(standard))):
            raise ValueError(
                "expected {mean, std} (standard) or {min, max} (min-max), got keys "
                f"{sorted(k for k, v in self.model_dump().items() if v is not None)}"
            )
        if self.min is not None and self.max is not None and self.max <= self.min:
            raise ValueError(f"expected max > min, got min {self.min}, max {self.max}")
        return self

    @property
    def kind(self) -> Literal["standard", "minmax"]:
        return "standard" if self.mean is not None else "minmax"


class OneHot(_Strict):
    """One 0/1 feature per category; an unknown value is an error or all zeros."""

    categories: list[Category] = Field(min_length=1, description="Categories, in output order.")
    unknown: Literal["error", "ignore"] = Field(
        "error", description="error: refuse the row (400); ignore: all zeros."
    )

    @field_validator("categories")
    @classmethod
    def _uniform(cls, value: list[Category]) -> list[Category]:
        if len({type(c) for c in value}) > 1:
            raise ValueError(f"expected categories all text or all integers, got {value}")
        if len(set(value)) != len(value):
            raise ValueError(f"expected unique categories, got {value}")
        return value

    @property
    def numeric(self) -> bool:
        return isinstance(self.categories[0], int)


class Feature(_Strict):
    """One declared feature: where its value comes from, then its rules."""

    name: str = Field(min_length=1, description="Feature name (and default raw column).")
    column: str | None = Field(None, min_length=1, description="Raw column; default: name.")
    expr: str | None = Field(None, min_length=1, description="Expression over raw columns.")
    impute: Impute | None = None
    clip: tuple[float | None, float | None] | None = Field(
        None, description="[low, high]; null for no bound on that side."
    )
    bucketize: list[float] | None = Field(
        None, min_length=1, description="Increasing boundaries; the value becomes its bucket."
    )
    scale: Scale | None = None
    one_hot: OneHot | None = None

    @field_validator("expr")
    @classmethod
    def _expression(cls, value: str | None) -> str | None:
        if value is not None:
            parse_expression(value)  # raises ValueError naming the offending part
        return value

    @field_validator("clip")
    @classmethod
    def _bounds(cls, value: tuple[float | None, float | None] | None) -> Any:
        if value is not None and None not in value and value[0] > value[1]:  # type: ignore[operator]
            raise ValueError(f"expected [low, high] with low <= high, got {list(value)}")
        return value

    @field_validator("bucketize")
    @classmethod
    def _increasing(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError(f"expected strictly increasing boundaries, got {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Feature:
        if self.column is not None and self.expr is not None:
            raise ValueError(f"feature '{self.name}': set 'column' or 'expr', not both")
        if self.one_hot is not None:
            if self.scale is not None or self.clip is not None:
                raise ValueError(
                    f"feature '{self.name}': one_hot takes categories; drop scale and clip"
                )
            if not self.one_hot.numeric and (self.expr is not None or self.bucketize):
                raise ValueError(
                    f"feature '{self.name}': one_hot of a number (expr or bucketize) needs "
                    "integer categories"
                )
        elif self.impute is not None and isinstance(self.impute.constant, str):
            raise ValueError(
                f"feature '{self.name}': a text impute constant needs one_hot; numbers here"
            )
        return self

    @property
    def categorical(self) -> bool:
        """True when the raw column holds categories (text, or integers one-hot encoded)."""
        return self.one_hot is not None and self.expr is None and not self.bucketize

    @property
    def width(self) -> int:
        return len(self.one_hot.categories) if self.one_hot is not None else 1

    def output_names(self) -> list[str]:
        """Names of the columns this feature fills (``country=DE`` for a one-hot)."""
        if self.one_hot is None:
            return [self.name]
        return [f"{self.name}={c}" for c in self.one_hot.categories]


class PreprocessingConfig(_Strict):
    """Named raw columns in, the model's input tensor (features in declared order) out."""

    input: str | None = Field(
        None, min_length=1, description="Model input the features fill; default: its only one."
    )
    features: list[Feature] = Field(min_length=1, description="Features, in tensor order.")

    @model_validator(mode="after")
    def _unique(self) -> PreprocessingConfig:
        names = [f.name for f in self.features]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ValueError(f"expected unique feature names, got '{name}' twice")
            seen.add(name)
        return self

    @property
    def width(self) -> int:
        """Values per row of the model input."""
        return sum(f.width for f in self.features)
