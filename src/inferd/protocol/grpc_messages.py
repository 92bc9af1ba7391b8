"""The data plane's answers (plain dicts, as HTTP sends them) as gRPC response messages.

The data plane returns metadata, configuration and statistics in the JSON shapes of the V2
REST protocol and Triton's extensions; the gRPC messages have the same field names, so
configuration and statistics go through protobuf's JSON mapping and stay identical over
both protocols.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import json_format

from inferd.protocol._gen import grpc_service_pb2 as pb
from inferd.protocol._gen import model_config_pb2 as mc


def server_metadata(doc: Mapping[str, Any]) -> pb.ServerMetadataResponse:
    """``{"name", "version", "extensions"}`` as a ``ServerMetadataResponse``."""
    return pb.ServerMetadataResponse(
        name=doc["name"], version=doc["version"], extensions=doc["extensions"]
    )


def model_metadata(doc: Mapping[str, Any]) -> pb.ModelMetadataResponse:
    """V2 model metadata as a ``ModelMetadataResponse`` (the protocol has no parameters)."""
    msg = pb.ModelMetadataResponse(
        name=doc["name"], versions=doc["versions"], platform=doc["platform"]
    )
    for kind in ("inputs", "outputs"):
        for tensor in doc[kind]:
            getattr(msg, kind).add(
                name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"]
            )
    return msg


def model_config(doc: Mapping[str, Any]) -> pb.ModelConfigResponse:
    """Triton's JSON ``model_config`` as a ``ModelConfigResponse``."""
    config = json_format.ParseDict(doc, mc.ModelConfig())
    return pb.ModelConfigResponse(config=config)


def statistics(doc: Mapping[str, Any]) -> pb.ModelStatisticsResponse:
    """Triton's JSON statistics as a ``ModelStatisticsResponse``."""
    return json_format.ParseDict(doc, pb.ModelStatisticsResponse())


def repository_index(
    entries: Sequence[Mapping[str, str]], ready_only: bool
) -> pb.RepositoryIndexResponse:
    """The repository index, optionally only the versions that are ready."""
    msg = pb.RepositoryIndexResponse()
    for entry in entries:
        if ready_only and entry.get("state") != "READY":
            continue
        msg.models.add(
            name=entry["name"],
            version=entry.get("version", ""),
            state=entry.get("state", ""),
            reason=entry.get("reason", ""),
        )
    return msg
