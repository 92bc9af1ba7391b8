"""Batch inference jobs: score files with a registered model version, resumably.

    JobService   submit, list, show, cancel, resume; a scheduler thread in servers
    JobStore     job state and planned chunks in the registry database
    JobRunner    runs one claimed job (inferd.jobs.runner, needs the ``jobs`` extra)
    Engine       LocalEngine (processes) and RayEngine (Ray Data), see inferd.jobs.engine

Importing this package needs no pyarrow; running a job does (``pip install 'inferd[jobs]'``).
"""

from inferd.jobs.records import Chunk, ChunkResult, JobRecord, JobState
from inferd.jobs.service import JobService
from inferd.jobs.spec import JobSpec, parse_columns, parse_spec
from inferd.jobs.store import JobNotFound, JobStore

__all__ = [
    "Chunk",
    "ChunkResult",
    "JobNotFound",
    "JobRecord",
    "JobService",
    "JobSpec",
    "JobState",
    "JobStore",
    "parse_columns",
    "parse_spec",
]
