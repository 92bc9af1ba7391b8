"""OpenAI-compatible generation under ``/openai/v1`` (as KServe's Hugging Face runtime has
it; ``/v1`` is inferd's management API), and Triton's V2 generate extension.

POST /openai/v1/completions          prompt(s) -> choices; ``stream: true`` for SSE
POST /openai/v1/chat/completions     messages -> a reply, through the tokenizer's chat template
GET  /openai/v1/models[/{m}]         the generative models served
POST /v2/models/{m}[/versions/{v}]/generate          {"text_input", "parameters"} -> text
POST /v2/models/{m}[/versions/{v}]/generate_stream   the same as server-sent events

These routes answer through ASGI ``send`` themselves, as a streamed answer cannot be one
body. The API key is checked by the HTTP app before (the ``infer`` group); the OpenAI routes
name their model in the body, so the key's model scope is checked here.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from inferd.api import _generation as g
from inferd.api._logprobs import Logprobs
from inferd.api.schemas.openai import ChatCompletionRequest, CompletionRequest, GenerateRequest
from inferd.errors import InferdError, InvalidInput, require_method
from inferd.generative.engine import GenerationEngine
from inferd.generative.sampling import SamplingParams, TokenLogprob
from inferd.monitoring.generate_metrics import GenerateMetrics
from inferd.security.guard import Guard
from inferd.security.keys import ApiKey
from inferd.security.tokens import Reservation, TokenLimits, TokensExhausted
from inferd.serving.manager import ModelManager, ModelVersion
from inferd.traffic.policy import TrafficPolicy
from inferd.types import InferenceRequest

GENERATE = ("generate", "generate_stream")
Headers = list[tuple[bytes, bytes]]
Answer = Callable[[ModelVersion, GenerationEngine, Headers, g.Receive, g.Send], Awaitable[None]]
_SAMPLING = ("max_tokens", "temperature", "top_p", "top_k", "stop", "seed", "ignore_eos",
             "presence_penalty", "frequency_penalty", "repetition_penalty")  # fmt: skip


def owns(path: str) -> bool:
    """Whether ``path`` is one of these routes (the HTTP app hands it over whole)."""
    parts = path.strip("/").split("/")
    if parts[0] == "openai":
        return True
    if parts[:2] != ["v2", "models"]:
        return False
    return (len(parts) == 4 and parts[3] in GENERATE) or (
        len(parts) == 6 and parts[3] == "versions" and parts[5] in GENERATE
    )


def chat_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The prompt for a chat: the tokenizer's template, else inferd's plain one
    (``<|role|>\\ncontent\\n`` per message, then ``<|assistant|>\\n``)."""
    if getattr(tokenizer, "chat_template", None):
        text: str = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return text
    return "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages) + "<|assistant|>\n"


class GenerativeRoutes:
    """Answers the generation routes.

    Args:
        manager: the model manager (the version serving a name).
        metrics: the ``inferd_generate_*`` families; None for none.
        guard: with auth on, checks the key's model scope for the OpenAI routes.
        traffic: experiments and canary rollouts choose the version of OpenAI requests.
        tokens: token budgets per minute per key and per model; None for none.
    """

    def __init__(
        self, manager: ModelManager, metrics: GenerateMetrics | None = None,
        guard: Guard | None = None, traffic: TrafficPolicy | None = None,
        tokens: TokenLimits | None = None,
    ) -> None:  # fmt: skip
        self.manager = manager
        self.metrics = metrics
        self.guard = guard
        self.traffic = traffic
        self.tokens = tokens

    async def serve(self, scope: Any, body: bytes, receive: g.Receive, send: g.Send) -> None:
        """Answer one request whose body has been read; errors answer as ``{"error"}``."""
        try:
            await self._dispatch(scope, body, receive, send)
        except InferdError as err:
            await g.send_error(send, err, g.error_body(scope["path"], err))

    async def _dispatch(self, scope: Any, body: bytes, receive: g.Receive, send: g.Send) -> None:
        parts = scope["path"].strip("/").split("/")
        method, caller = scope["method"], scope.get("inferd.caller")
        if parts[0] == "v2":
            version = parts[4] if len(parts) == 6 else None
            require_method(method, "POST")
            request = g.validate(GenerateRequest, body)
            found = g.generative_version(self.manager, parts[2], version)
            stream = parts[-1] == "generate_stream"
            await self._generate(found, request, stream, caller, receive, send)
            return
        route = parts[2:] if parts[:2] == ["openai", "v1"] else None
        if route == ["models"] or (route and len(route) == 2 and route[0] == "models"):
            require_method(method, "GET")
            await g.send_json(send, 200, self._models(route[1:], caller))
        elif route == ["completions"]:
            require_method(method, "POST")
            req = _supported(g.validate(CompletionRequest, body))
            await self._routed(req.model, req.user, scope, partial(self._completions, req, caller),
                               receive, send)  # fmt: skip
        elif route == ["chat", "completions"]:
            require_method(method, "POST")
            chat = _supported(g.validate(ChatCompletionRequest, body))
            await self._routed(chat.model, chat.user, scope, partial(self._chat, chat, caller),
                               receive, send)  # fmt: skip
        else:
            raise g.PathNotFound(scope["path"])

    def _models(self, named: list[str], caller: ApiKey | None) -> dict[str, Any]:
        cards = []
        for name in named or self.manager.names():
            try:
                found = g.generative_version(self.manager, name, None)
                if caller is not None and self.guard is not None:
                    self.guard.check_model(caller, name)
            except InferdError:
                if named:
                    raise
                continue
            cards.append({"id": name, "object": "model", "created": 0, "owned_by": "inferd",
                          "version": found.label})  # fmt: skip
        return cards[0] if named else {"object": "list", "data": cards}

    async def _routed(
        self, model: str, user: str | None, scope: Any, answer: Answer, receive: g.Receive,
        send: g.Send,
    ) -> None:  # fmt: skip
        """Check the key's scope, let experiments and rollouts choose the version (by
        ``user``, as ``/predict``'s ``user_id``), answer, and count the answer for them."""
        caller = scope.get("inferd.caller")
        if caller is not None and self.guard is not None:
            self.guard.check_model(caller, model)
        route = request = None
        if self.traffic is not None and self.traffic.live:
            request = InferenceRequest(model, None, {}, id=uuid.uuid4().hex, routing_key=user)
            route = self.traffic.route(request, _headers(scope))
        start, status = time.perf_counter(), 500
        try:
            found = g.generative_version(self.manager, model, route.version if route else None)
            headers = [(b"x-model-version", found.label.encode())]
            if route is not None:  # an experiment's variant or a rollout's arm
                headers += route.headers
            await answer(found, g.engine_of(found, self.metrics), headers, receive, send)
            status = 200
        except InferdError as err:
            status = err.http_status
            raise
        finally:
            if self.traffic is not None and route is not None and request is not None:
                elapsed_ms = 1000 * (time.perf_counter() - start)
                self.traffic.record(route, request, status, elapsed_ms)

    async def _completions(
        self, req: CompletionRequest, caller: ApiKey | None, found: ModelVersion,
        engine: GenerationEngine, headers: Headers, receive: g.Receive, send: g.Send,
    ) -> None:  # fmt: skip
        params = g.sampling(req.model_dump(), found)
        texts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        prompts = [await asyncio.to_thread(engine.encode, t) for t in texts]
        for prompt in prompts:
            g.check_context(engine, prompt, params)
        head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion",
                "created": int(time.time()), "model": req.model}  # fmt: skip
        reservation = self._reserve(caller, found, prompts, params)
        choices = g.Choices(engine, prompts, params)
        usage = req.stream_options.include_usage if req.stream_options else False
        try:
            await _answer(head, choices, req.stream, usage, send, receive, headers, chat=False)
        finally:
            self._settle(reservation, choices)

    async def _chat(
        self, req: ChatCompletionRequest, caller: ApiKey | None, found: ModelVersion,
        engine: GenerationEngine, headers: Headers, receive: g.Receive, send: g.Send,
    ) -> None:  # fmt: skip
        fields = req.model_dump()
        if req.max_completion_tokens is not None:
            fields["max_tokens"] = req.max_completion_tokens
        if req.top_logprobs is not None and not req.logprobs:
            raise InvalidInput("top_logprobs", "logprobs: true with it", "logprobs absent or false")
        fields["logprobs"] = (req.top_logprobs or 0) if req.logprobs else None
        params = g.sampling(fields, found)
        messages = [{"role": m.role, "content": m.content} for m in req.messages]
        text = chat_prompt(engine.tokenizer, messages)
        prompt = await asyncio.to_thread(engine.encode, text)
        g.check_context(engine, prompt, params)
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
                "created": int(time.time()), "model": req.model}  # fmt: skip
        reservation = self._reserve(caller, found, [prompt], params)
        choices = g.Choices(engine, [prompt], params)
        usage = req.stream_options.include_usage if req.stream_options else False
        try:
            await _answer(head, choices, req.stream, usage, send, receive, headers, chat=True)
        finally:
            self._settle(reservation, choices)

    def _reserve(
        self, caller: ApiKey | None, found: ModelVersion, prompts: list[list[int]],
        params: SamplingParams,
    ) -> Reservation | None:  # fmt: skip
        """Take the request's most tokens from its key's and model's budgets (429 if short)."""
        if self.tokens is None:
            return None
        most = sum(len(p) for p in prompts) + params.max_tokens * params.n * len(prompts)
        own = getattr(found.runtime, "tokens_per_minute", None)
        try:
            return self.tokens.reserve(caller.id if caller else None, found.name, most, own)
        except TokensExhausted as err:
            if self.metrics is not None:
                self.metrics.rate_limited.labels(found.name, err.budget).inc()
            raise

    def _settle(self, reservation: Reservation | None, choices: g.Choices) -> None:
        if reservation is not None and self.tokens is not None:
            self.tokens.settle(reservation, choices.prompt_tokens + choices.completion_tokens)

    async def _generate(
        self, found: ModelVersion, req: GenerateRequest, stream: bool, caller: ApiKey | None,
        receive: g.Receive, send: g.Send,
    ) -> None:  # fmt: skip
        engine = g.engine_of(found, self.metrics)
        given = {k: req.parameters[k] for k in _SAMPLING if k in req.parameters}
        given.setdefault("temperature", 0.0)  # Triton's generate is greedy unless told
        params = g.sampling(given, found)
        prompt = await asyncio.to_thread(engine.encode, req.text_input)
        g.check_context(engine, prompt, params)
        head = {"model_name": found.name, "model_version": found.label}
        reservation = self._reserve(caller, found, [prompt], params)
        choices = g.Choices(engine, [prompt], params)
        watcher = asyncio.create_task(g.watch_disconnect(receive, choices))
        try:
            if stream:
                await g.start_events(send)
                try:
                    async for _, event in choices.events():
                        finish = _reason(event.finish)
                        if event.text or finish:
                            await g.send_event(send, {**head, "text_output": event.text,
                                                      "finish_reason": finish})  # fmt: skip
                except InferdError as err:  # the answer has begun: the error is an event
                    await g.send_event(send, {"error": err.message})
                await g.end_events(send, done=False)
                return
            parts = [event.text async for _, event in choices.events()]
            await g.send_json(send, 200, {**head, "text_output": "".join(parts)})
        finally:
            watcher.cancel()
            self._settle(reservation, choices)


R = TypeVar("R", CompletionRequest, ChatCompletionRequest)


def _supported(request: R) -> R:
    """The request, unless it sets a sampling field this server does not honour (400)."""
    found = request.unsupported()
    if found is not None:
        raise InvalidInput(found[0], "it left out (inferd does not support it)", found[1])
    return request


def _headers(scope: Any) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def _reason(finish: str | None) -> str | None:
    return finish if finish in ("stop", "length") else None


async def _answer(
    head: dict[str, Any], choices: g.Choices, stream: bool, usage: bool, send: g.Send,
    receive: g.Receive, headers: Headers, *, chat: bool,
) -> None:  # fmt: skip
    """Run the choices; answer one JSON document, or events as tokens come."""
    watcher = asyncio.create_task(g.watch_disconnect(receive, choices))
    try:
        if stream:
            await _stream(head, choices, usage, send, headers, chat)
            return
        n = len(choices.sequences)
        texts, counts = [""] * n, [0] * n
        reasons: list[str | None] = [None] * n
        entries: list[list[TokenLogprob]] = [[] for _ in range(n)]
        async for i, event in choices.events():
            texts[i] += event.text
            entries[i].extend(event.logprobs)
            if event.finish is not None:
                reasons[i] = _reason(event.finish)
                counts[i] = event.completion_tokens
        want = choices.params.logprobs is not None
        out = [{"index": i, "finish_reason": reasons[i],
                "logprobs": Logprobs(choices.token_text, chat).render(entries[i]) if want else None,
                **({"message": {"role": "assistant", "content": texts[i]}} if chat
                   else {"text": texts[i]})} for i in range(n)]  # fmt: skip
        usage_counts = _usage(choices.prompt_tokens, sum(counts))
        await g.send_json(send, 200, {**head, "choices": out, "usage": usage_counts}, headers)
    finally:
        watcher.cancel()


async def _stream(
    head: dict[str, Any],
    choices: g.Choices,
    usage: bool,
    send: g.Send,
    headers: Headers,
    chat: bool,
) -> None:
    chunk = {**head, "object": "chat.completion.chunk"} if chat else head
    await g.start_events(send, headers)
    if chat:  # the role comes first, as OpenAI sends it
        for i in range(len(choices.sequences)):
            delta = {"index": i, "delta": {"role": "assistant", "content": ""},
                     "finish_reason": None, "logprobs": None}  # fmt: skip
            await g.send_event(send, {**chunk, "choices": [delta]})
    try:
        completion = await _deltas(chunk, choices, send, chat)
    except InferdError as err:  # the answer has begun: the error is an event, then the end
        await g.send_event(send, {"error": err.message})
        await g.end_events(send)
        return
    if usage:
        counts = _usage(choices.prompt_tokens, completion)
        await g.send_event(send, {**chunk, "choices": [], "usage": counts})
    await g.end_events(send)


async def _deltas(chunk: dict[str, Any], choices: g.Choices, send: g.Send, chat: bool) -> int:
    """Send each text delta as an event; return the completion tokens of every choice."""
    completion = 0
    renderers = [Logprobs(choices.token_text, chat) for _ in choices.sequences]
    async for i, event in choices.events():
        finish = _reason(event.finish)
        if event.finish is not None:
            completion += event.completion_tokens
        if not event.text and not finish and not event.logprobs:
            continue
        logprobs = renderers[i].render(event.logprobs) if event.logprobs else None
        body: dict[str, Any] = {"index": i, "finish_reason": finish, "logprobs": logprobs}
        if chat:
            body["delta"] = {"content": event.text} if event.text else {}
        else:
            body["text"] = event.text
        await g.send_event(send, {**chunk, "choices": [body]})
    return completion


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip
