"""The one error shape every endpoint answers with, whatever the status."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Error(BaseModel):
    """An error: what field, what was expected and what came, and how to fix it."""

    error: str = Field(description="the reason, naming the field at fault")
