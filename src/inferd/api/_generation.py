"""What the generation routes share: validating bodies, finding the engine, running the
choices of one request, and answering as JSON or as server-sent events.

A request's choices run as sequences in the model's engine; their events come back on the
event loop through one queue. A task watches the connection: when the client goes away, every
choice still running is cancelled, and the engine frees its slot at its next step.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from inferd.errors import InferdError, InvalidInput, RateLimited
from inferd.generative.engine import GenerationEngine
from inferd.generative.sampling import SamplingParams
from inferd.generative.sequence import Event
from inferd.monitoring.generate_metrics import GenerateMetrics
from inferd.protocol.v2 import encode_error
from inferd.serving.manager import ModelManager, ModelVersion

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
M = TypeVar("M", bound=BaseModel)
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def validate(model: type[M], raw: bytes) -> M:
    """The body as ``model``. Raises InvalidInput naming the first field at fault."""
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        got = "nothing" if first["type"] == "missing" else repr(first.get("input"))[:100]
        raise InvalidInput(field, first["msg"].lower(), got) from None


def generative_version(manager: ModelManager, name: str, version: str | None) -> ModelVersion:
    """The ready version serving ``name`` if it generates text.

    Raises:
        ModelNotFound, ModelNotReady: from the manager.
        InvalidInput: the model is not generative.
    """
    found = manager.get(name, version)
    if not getattr(found.runtime, "generative", False):
        raise InvalidInput(
            "model", "a generative model (platform: transformers or vllm)",
            f"'{name}' (platform {found.config.platform})",
        )  # fmt: skip
    return found


def engine_of(found: ModelVersion, metrics: GenerateMetrics | None) -> GenerationEngine:
    engine: GenerationEngine = found.runtime.engine  # type: ignore[union-attr]
    if engine is None:
        raise InvalidInput("model", "a loaded model", f"'{found.name}' being unloaded")
    if engine.observer is None and metrics is not None:
        engine.observer = metrics.observer(found.name)
    return engine


def sampling(fields: dict[str, Any], found: ModelVersion) -> SamplingParams:
    """Checked sampling parameters from request fields (None means the default)."""
    runtime: Any = found.runtime
    stop = fields.get("stop")
    params = SamplingParams(
        max_tokens=_given(fields.get("max_tokens"), runtime.default_max_tokens),
        temperature=_given(fields.get("temperature"), 1.0),
        top_p=_given(fields.get("top_p"), 1.0),
        top_k=_given(fields.get("top_k"), 0),
        stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
        seed=fields.get("seed"),
        n=_given(fields.get("n"), 1),
        ignore_eos=bool(fields.get("ignore_eos", False)),
        presence_penalty=_given(fields.get("presence_penalty"), 0.0),
        frequency_penalty=_given(fields.get("frequency_penalty"), 0.0),
        repetition_penalty=_given(fields.get("repetition_penalty"), 1.0),
        logprobs=fields.get("logprobs"),
    )
    return params.checked(runtime.max_tokens)


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value


def check_context(engine: GenerationEngine, prompt: Sequence[int], params: SamplingParams) -> None:
    """Raise InvalidInput when the prompt is empty or prompt + max_tokens overflow the context."""
    if not prompt:
        raise InvalidInput("prompt", "text of at least one token", "an empty prompt")
    room = engine.max_context - len(prompt)
    if params.max_tokens > room:
        raise InvalidInput(
            "max_tokens", f"at most {max(room, 0)} (context {engine.max_context} tokens, prompt "
            f"{len(prompt)})", str(params.max_tokens),
        )  # fmt: skip


class PathNotFound(InferdError):
    """No route for the path (404, naming it)."""

    http_status = 404
    grpc_code = "NOT_FOUND"

    def __init__(self, path: str) -> None:
        super().__init__(f"path '{path}' not found; see the endpoint list in the README")


class Choices:
    """The sequences of one request, their events merged in arrival order.

    Args:
        engine: the model's engine.
        prompts: token ids per prompt; each gets ``params.n`` choices (index prompt * n + j).
        params: sampling; choice ``i`` is seeded ``seed + i`` when a seed is given.
    """

    def __init__(
        self, engine: GenerationEngine, prompts: Sequence[list[int]], params: SamplingParams
    ):
        loop = asyncio.get_running_loop()
        self.params = params
        self.token_text = engine.token_text
        self._queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
        self._engine = engine
        self.prompt_tokens = sum(len(p) for p in prompts)  # each prompt once, as OpenAI counts
        expanded = [p for p in prompts for _ in range(params.n)]
        self.running = len(expanded)
        self._completion = [0] * len(expanded)  # tokens generated so far, per choice
        self.sequences = []
        for i, prompt in enumerate(expanded):
            seed = None if params.seed is None else params.seed + i
            each = dataclasses.replace(params, seed=seed, n=1)

            def sink(event: Event, i: int = i) -> None:
                loop.call_soon_threadsafe(self._queue.put_nowait, (i, event))

            self.sequences.append(engine.submit(prompt, each, sink))

    async def events(self) -> AsyncIterator[tuple[int, Event]]:
        """(choice index, event) until every choice has finished; leaving early cancels."""
        try:
            while self.running:
                index, event = await self._queue.get()
                self._completion[index] = event.completion_tokens
                if event.finish is not None:
                    self.running -= 1
                    if event.finish == "error":
                        raise InferdError(event.error)
                yield index, event
        finally:
            self.cancel()

    @property
    def completion_tokens(self) -> int:
        """Tokens generated so far by every choice (what a token budget is charged)."""
        return sum(self._completion)

    def cancel(self) -> None:
        for seq in self.sequences:
            if seq.finish is None:
                self._engine.cancel(seq)


async def watch_disconnect(receive: Receive, choices: Choices) -> None:
    """Cancel the choices when the client goes away (run as a task while answering)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            choices.cancel()
            return


async def send_json(send: Send, status: int, payload: Any, headers: Sequence[Any] = ()) -> None:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        *headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, err: InferdError, body: bytes | None = None) -> None:
    headers = [(k.encode(), v.encode()) for k, v in err.headers().items()]
    await send_json(send, err.http_status, body or encode_error(err.message), headers)


def error_body(path: str, err: InferdError) -> bytes:
    """The error body for ``path``: OpenAI's shape for a rate limit under ``/openai/`` (the
    SDK's ``RateLimitError`` then carries ``type`` and ``code``), inferd's otherwise."""
    if isinstance(err, RateLimited) and path.startswith("/openai/"):
        return orjson.dumps({"error": {"message": err.message, "type": "rate_limit_exceeded",
                                       "param": None, "code": "rate_limit_exceeded"}})  # fmt: skip
    return encode_error(err.message)


async def start_events(send: Send, headers: Sequence[Any] = ()) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [*SSE_HEADERS, *headers]})  # fmt: skip


async def send_event(send: Send, payload: Any) -> None:
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    await send({"type": "http.response.body", "body": b"data: " + data + b"\n\n",
                "more_body": True})  # fmt: skip


async def end_events(send: Send, done: bool = True) -> None:
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n" if done else b""})
