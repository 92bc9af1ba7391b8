"""Bodies of the OpenAI-compatible API under ``/openai/v1`` and of the V2 generate extension.

The request models are also what :mod:`inferd.api.openai` validates bodies with (generation
costs far more than validation). Unknown fields are ignored (``user``-like metadata the SDK
may send), but sampling fields this server does not honour (``logit_bias``, ``echo``,
``best_of``, ``suffix``) are refused with a 400 naming them rather than silently ignored.
``top_k``, ``ignore_eos`` and ``repetition_penalty`` are extensions (the SDK passes them with
``extra_body``).
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
    presence_penalty: float = Field(0.0, description="OpenAI's, -2 to 2: once per token seen")
    frequency_penalty: float = Field(0.0, description="OpenAI's, -2 to 2: per time seen")
    repetition_penalty: float = Field(
        1.0, description="extension, Hugging Face's: (0, 2], 1 is off; prompt and output"
    )
    user: str | None = Field(None, description="routing key of experiments and canaries")
    logit_bias: dict[str, float] | Absent = Field(None, description="not supported: 400")

    def unsupported(self) -> tuple[str, str] | None:
        """(field, value) of a sampling field set that this server does not honour (it is
        refused, not ignored, as ignoring it would change the output unannounced)."""
        if self.logit_bias:
            return "logit_bias", repr(self.logit_bias)[:100]
        return None


class CompletionRequest(Sampling):
    """``POST /openai/v1/completions``."""

    prompt: str | list[str] = Field(description="a prompt, or several (one choice set each)")
    logprobs: int | None = Field(
        None, description="each token's log-probability and the k most likely, 0 to 20"
    )
    echo: bool | Absent = Field(None, description="not supported: 400 when true")
    best_of: int | Absent = Field(None, description="not supported: 400 above n")
    suffix: str | Absent = Field(None, description="not supported: 400 when not empty")

    def unsupported(self) -> tuple[str, str] | None:
        if self.echo:
            return "echo", "true"
        if self.best_of is not None and self.best_of != self.n:
            return "best_of", str(self.best_of)
        if self.suffix:
            return "suffix", repr(self.suffix)[:100]
        return super().unsupported()


class ChatMessage(_Body):
    role: str = Field(min_length=1, description="system, user, assistant, ...")
    content: str


class ChatCompletionRequest(Sampling):
    """``POST /openai/v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | Absent = Field(None, description="alias of max_tokens")
    logprobs: bool | None = Field(None, description="each token's log-probability")
    top_logprobs: int | None = Field(
        None, description="with logprobs: the k most likely tokens at each place, 0 to 20"
    )


class Usage(BaseModel):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)


FinishReason = Literal["stop", "length"]


class CompletionLogprobs(BaseModel):
    """Completions' log-probabilities: per token its text, log-probability, the most likely
    alternatives (with the token itself) and its character offset in the text."""

    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int = Field(ge=0)
    text: str
    finish_reason: FinishReason | None
    logprobs: CompletionLogprobs | None = None


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


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    content: list[TokenLogprob]
    refusal: None = None


class ChatChoice(BaseModel):
    index: int = Field(ge=0)
    message: AssistantMessage
    finish_reason: FinishReason | None
    logprobs: ChatLogprobs | None = None


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
    """Triton's generate extension: the prompt, and sampling in ``parameters``: max_tokens,
    temperature, top_p, top_k, stop, seed, ignore_eos, presence_penalty, frequency_penalty,
    repetition_penalty."""

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
