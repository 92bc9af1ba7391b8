"""gRPC calls of the SDK, without I/O: the request message and how to read the answer.

Answers are turned into the same dicts the HTTP protocol returns, so code written against
one protocol works with the other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from inferd.client._types import ClientError, InferResult
from inferd.protocol._gen import grpc_service_pb2 as pb
from inferd.protocol._tensors import array_from_bytes, array_to_bytes
from inferd.protocol.grpc_codec import (
    CONTENTS_FIELD,
    SERVICE,
    decode_parameters,
    encode_parameters,
)
from inferd.types import DATATYPE_TO_DTYPE, datatype_of

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GrpcCall(Generic[T]):
    """One unary RPC: method path, request, response type and the reader of the answer."""

    method: str
    request: Message
    response_type: type[Message]
    parse: Callable[[Any], T]


def _call(method: str, request: Message, parse: Callable[[Any], T]) -> GrpcCall[T]:
    response_type = getattr(pb, type(request).__name__.replace("Request", "Response"))
    return GrpcCall(f"/{SERVICE}/{method}", request, response_type, parse)


class GrpcProtocol:
    """Builds the calls of ``inference.GRPCInferenceService``."""

    def live(self) -> GrpcCall[bool]:
        return _call("ServerLive", pb.ServerLiveRequest(), lambda r: bool(r.live))

    def ready(self) -> GrpcCall[bool]:
        return _call("ServerReady", pb.ServerReadyRequest(), lambda r: bool(r.ready))

    def server_metadata(self) -> GrpcCall[dict[str, Any]]:
        return _call("ServerMetadata", pb.ServerMetadataRequest(), to_dict)

    def model_metadata(self, model: str, version: str | None) -> GrpcCall[dict[str, Any]]:
        request = pb.ModelMetadataRequest(name=model, version=version or "")
        return _call("ModelMetadata", request, to_dict)

    def model_ready(self, model: str, version: str | None) -> GrpcCall[bool]:
        request = pb.ModelReadyRequest(name=model, version=version or "")
        return _call("ModelReady", request, lambda r: bool(r.ready))

    def model_config(self, model: str, version: str | None) -> GrpcCall[dict[str, Any]]:
        request = pb.ModelConfigRequest(name=model, version=version or "")
        return _call("ModelConfig", request, lambda r: to_dict(r.config))

    def statistics(self, model: str | None, version: str | None) -> GrpcCall[dict[str, Any]]:
        request = pb.ModelStatisticsRequest(name=model or "", version=version or "")
        return _call("ModelStatistics", request, to_dict)

    def repository_index(self) -> GrpcCall[list[dict[str, Any]]]:
        def parse(r: pb.RepositoryIndexResponse) -> list[dict[str, Any]]:
            return [{k: v for k, v in to_dict(m).items() if v != ""} for m in r.models]

        return _call("RepositoryIndex", pb.RepositoryIndexRequest(), parse)

    def load_model(self, model: str) -> GrpcCall[None]:
        request = pb.RepositoryModelLoadRequest(model_name=model)
        return _call("RepositoryModelLoad", request, lambda r: None)

    def unload_model(self, model: str) -> GrpcCall[None]:
        request = pb.RepositoryModelUnloadRequest(model_name=model)
        return _call("RepositoryModelUnload", request, lambda r: None)

    def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        version: str | None,
        outputs: Sequence[str] | None,
        request_id: str | None,
        parameters: Mapping[str, Any] | None,
    ) -> GrpcCall[InferResult]:
        """A ``ModelInferRequest`` with every input in ``raw_input_contents``."""
        request = pb.ModelInferRequest(model_name=model, model_version=version or "")
        if request_id is not None:
            request.id = request_id
        raw = []
        for name, value in inputs.items():
            array = np.asarray(value)
            request.inputs.add(name=name, datatype=datatype_of(array), shape=array.shape)
            raw.append(array_to_bytes(array))
        request.raw_input_contents.extend(raw)
        for name in outputs or ():
            request.outputs.add(name=name)
        encode_parameters(parameters or {}, request.parameters)
        return _call("ModelInfer", request, decode_infer_response)


def decode_infer_response(msg: pb.ModelInferResponse) -> InferResult:
    """Read a ``ModelInferResponse``, raw or typed contents."""
    outputs: dict[str, np.ndarray] = {}
    raw = msg.raw_output_contents
    for index, tensor in enumerate(msg.outputs):
        shape = list(tensor.shape)
        if index < len(raw):
            outputs[tensor.name] = array_from_bytes(tensor.name, tensor.datatype, shape, raw[index])
            continue
        values = list(getattr(tensor.contents, CONTENTS_FIELD[tensor.datatype]))
        dtype = DATATYPE_TO_DTYPE[tensor.datatype]
        array = np.empty(len(values), dtype=dtype)
        array[:] = values
        outputs[tensor.name] = array.reshape(shape)
    return InferResult(
        model_name=msg.model_name,
        model_version=msg.model_version,
        outputs=outputs,
        id=msg.id or None,
        parameters=decode_parameters(msg.parameters),
    )


def to_dict(msg: Message) -> dict[str, Any]:
    """A message as a JSON-like dict with every field, enums by name and integers as ints.

    (protobuf's own JSON mapping writes 64-bit integers as strings and leaves out zeros,
    which would make the answers differ from the HTTP ones.)
    """
    out: dict[str, Any] = {}
    for field in msg.DESCRIPTOR.fields:
        value = getattr(msg, field.name)
        if field.containing_oneof is not None and not msg.HasField(field.name):
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = {k: _value(value_field, v) for k, v in value.items()}
        elif field.label == FieldDescriptor.LABEL_REPEATED:
            out[field.name] = [_value(field, v) for v in value]
        elif field.message_type is not None and not msg.HasField(field.name):
            continue
        else:
            out[field.name] = _value(field, value)
    return out


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.message_type is not None:
        return to_dict(value)
    if field.enum_type is not None:
        return field.enum_type.values_by_number[value].name
    return value


STREAM_METHOD = f"/{SERVICE}/ModelStreamInfer"
STREAM_CODECS: dict[str, Any] = {
    "request_serializer": pb.ModelInferRequest.SerializeToString,
    "response_deserializer": pb.ModelStreamInferResponse.FromString,
}


def stream_requests(
    protocol: GrpcProtocol, model: str, requests: Sequence[Mapping[str, np.ndarray]],
    version: str | None, outputs: Sequence[str] | None, parameters: Mapping[str, Any] | None,
) -> list[Message]:  # fmt: skip
    """One ModelInferRequest per request, its id its position (how answers are matched)."""
    return [protocol.infer(model, inputs, version, outputs, str(i), parameters).request
            for i, inputs in enumerate(requests)]  # fmt: skip


def stream_result(
    msg: pb.ModelStreamInferResponse,
) -> tuple[int, InferResult | ClientError]:
    """The position (the request id the SDK gave it) and answer of one stream response."""
    response = msg.infer_response
    index = int(response.id)
    if msg.error_message:
        return index, ClientError(msg.error_message, status=None, code="UNKNOWN")
    return index, decode_infer_response(response)
