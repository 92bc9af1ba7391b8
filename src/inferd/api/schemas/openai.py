"""Bodies of the OpenAI-compatible API under ``/openai/v1`` and of the V2 generate extension.

The request models are also what :mod:`inferd.api.openai` validates bodies with (generation
costs far more than validation). Unknown fields are ignored, as OpenAI's SDK sends some this
server does not use (``user``, ``frequency_penalty``, ...). ``top_k`` and ``ignore_eos`` are
extensions (the SDK passes them with ``extra_body``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from inferd.api.schemas._operation import Media, Operation

TAG = "openai"
Absent = SkipJsonSchema[None]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StreamOptions(_Body):
    include_usage: bool = Field(False, description="a last chunk with the usage counts")


class Sampling(_Body):
    """Sampling fields shared by completions and chat completions (ranges checked server-side,
    the errors name the field)."""

    model: str = Field(min_length=1, description="a served model with platform: transformers")
    max_tokens: int | None = Field(None, description="default: the model's default_max_tokens")
    temperature: float = Field(1.0, description="0 is greedy; up to 2")
    top_p: float = Field(1.0, description="nucleus sampling, in (0, 1]")
    top_k: int = Field(0, description="extension: keep the k most likely tokens; 0 keeps all")
    n: int = Field(1, description="choices per prompt, 1 to 16")
    stop: str | list[str] | None = Field(None, description="up to 4 strings that end a choice")
    seed: int | None = Field(None, description="reproducible sampling")
    stream: bool = Field(False, description="answer with server-sent events")
    stream_options: StreamOptions | None = None
    ignore_eos: bool = Field(False, description="extension: go on past end-of-sequence")
    user: str | None = Field(None, description="routing key of experiments and canaries")


class CompletionRequest(Sampling):
    """``POST /openai/v1/completions``."""

    prompt: str | list[str] = Field(description="a prompt, or several (one choice set each)")


class ChatMessage(_Body):
    role: str = Field(min_length=1, description="system, user, assistant, ...")
    content: str


class ChatCompletionRequest(Sampling):
    """``POST /openai/v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | Absent = Field(None, description="alias of max_tokens")


class Usage(BaseModel):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)


FinishReason = Literal["stop", "length"]


class CompletionChoice(BaseModel):
    index: int = Field(ge=0)
    text: str
    finish_reason: FinishReason | None
    logprobs: None = None


class Completion(BaseModel):
    """A completion; streamed, each server-sent event is one of these with a text delta
    (``finish_reason`` set on each choice's last), then ``data: [DONE]``."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class ChatChoice(BaseModel):
    index: int = Field(ge=0)
    message: AssistantMessage
    finish_reason: FinishReason | None
    logprobs: None = None


class ChatCompletion(BaseModel):
    """A chat completion; streamed, ``chat.completion.chunk`` events with ``delta``s."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


class GenerateRequest(_Body):
    """Triton's generate extension: the prompt, and sampling in ``parameters`` (or at the top
    level): max_tokens, temperature, top_p, top_k, stop, seed, ignore_eos."""

    text_input: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class GenerateResponse(BaseModel):
    """The whole text; ``generate_stream`` sends one of these per text delta."""

    model_name: str
    model_version: str
    text_output: str
    finish_reason: FinishReason | None = None


_SSE = "text/event-stream"
_PREFIX = "/openai/v1"


def _generate_operations() -> list[Operation]:
    out = []
    for versioned in (False, True):
        base = "/v2/models/{model_name}" + ("/versions/{model_version}" if versioned else "")
        suffix = "_version" if versioned else ""
        out += [
            Operation("POST", f"{base}/generate", f"model{suffix}_generate",
                      "generate text (Triton's generate extension)", TAG,
                      {200: GenerateResponse}, body=GenerateRequest),
            Operation("POST", f"{base}/generate_stream", f"model{suffix}_generate_stream",
                      "generate text as server-sent events", TAG,
                      {200: Media({_SSE: str})}, body=GenerateRequest),
        ]  # fmt: skip
    return out


OPERATIONS: tuple[Operation, ...] = (
    Operation("POST", f"{_PREFIX}/completions", "openai_completions",
              "OpenAI-compatible text completion (stream: server-sent events)", TAG,
              {200: Media({"application/json": Completion, _SSE: str})},
              body=CompletionRequest),
    Operation("POST", f"{_PREFIX}/chat/completions", "openai_chat_completions",
              "OpenAI-compatible chat completion (stream: server-sent events)", TAG,
              {200: Media({"application/json": ChatCompletion, _SSE: str})},
              body=ChatCompletionRequest),
    Operation("GET", f"{_PREFIX}/models", "openai_models", "the generative models served", TAG,
              {200: ModelList}),
    Operation("GET", f"{_PREFIX}/models/{{model_name}}", "openai_model", "one generative model",
              TAG, {200: ModelCard}),
    *_generate_operations(),
)  # fmt: skip
