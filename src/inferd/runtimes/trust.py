"""Which model artifacts run code, and the rule that those load only from folders an admin
configured (the code roots).

A ``python`` model imports its ``model.py``; a scikit-learn model with ``trust_pickle`` (or
``parameters.trusted_types``) unpickles whatever classes its file names. Either runs code
with the server's rights, so an operator key, which may register versions and edit model
configs, must not be able to point one at a file of its choosing. Such artifacts load only
from the code roots: by default the served model repository and the artifact root
(``INFERD_CODE_ROOTS`` replaces the list; folders the admin controls).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from inferd.config import ModelConfig
from inferd.errors import PermissionDenied


def runs_code(config: ModelConfig) -> str | None:
    """Why loading a version of this model runs its artifact's code; None when it does not."""
    if config.platform == "python":
        return "platform 'python' imports the model's model.py"
    if config.platform == "sklearn" and (
        config.trust_pickle or config.parameters.get("trusted_types")
    ):
        return "trust_pickle / trusted_types let the file create any object when it is read"
    return None


def parse_roots(text: str) -> list[Path]:
    """Folders from ``INFERD_CODE_ROOTS`` (separated by ``os.pathsep``)."""
    return [Path(p).expanduser().resolve() for p in text.split(os.pathsep) if p.strip()]


def check_code_root(
    config: ModelConfig, artifact: Path | None, roots: Sequence[Path] | None
) -> None:
    """Refuse a code-running artifact outside the code roots.

    Args:
        config: the model's config (platform, trust flags).
        artifact: the local artifact; None for a remote URI (never trusted to run code).
        roots: the code roots; None turns the check off (library use, the admin's own CLI).

    Raises:
        PermissionDenied: the artifact runs code and lies outside every root.
    """
    why = runs_code(config)
    if why is None or roots is None:
        return
    if artifact is not None:
        resolved = artifact.expanduser().resolve()
        if any(resolved.is_relative_to(root) for root in roots):
            return
    where = str(artifact) if artifact is not None else "a remote artifact"
    allowed = os.pathsep.join(str(r) for r in roots) or "none"
    raise PermissionDenied(
        f"model '{config.name}': {why}, and {where} is outside the folders code may load "
        f"from ({allowed}); an admin must put it in the model repository or add its folder "
        "to INFERD_CODE_ROOTS"
    )
