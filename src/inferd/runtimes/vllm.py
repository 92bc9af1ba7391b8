"""Causal language models served by vLLM (``platform: vllm``): its engine does the batching
(continuous batching over a paged KV cache) on an NVIDIA GPU.

The artifact is the same ``model.hf`` folder as ``platform: transformers`` (``save_pretrained``
output; nothing is downloaded). The routes see the same engine interface as the transformers
backend (``encode``, ``submit``, ``cancel``, ``token_text``, ``max_context``, ``observer``), so
the OpenAI routes, V2 generate and V2 infer, cancellation, token budgets and metrics work
unchanged: :class:`VllmEngine` runs vLLM's ``AsyncLLM`` on an event loop of its own thread,
hands it each request as token ids, and turns its delta outputs into inferd's events
(:mod:`inferd.generative.vllm_mapping`). Cancelling a request aborts it in vLLM.

Loading needs ``vllm`` importable and a CUDA GPU; without either the load fails naming the
model, the platform and what is missing. ``parameters`` in model.yaml: ``max_tokens``,
``default_max_tokens``, ``tokens_per_minute`` as for transformers, and
``gpu_memory_utilization`` (0.9: the share of the GPU vLLM may take), ``max_model_len``
(the context; default the model's), ``dtype`` (``auto``), ``enforce_eager`` (false: CUDA
graphs on).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferd.config import ModelConfig
from inferd.generative.engine import Observer
from inferd.generative.sampling import SamplingParams
from inferd.generative.sequence import Event, Sink
from inferd.generative.vllm_mapping import OutputStream, sampling_kwargs
from inferd.runtimes.base import MemoryUsage, import_framework
from inferd.runtimes.transformers import TransformersRuntime

PARAMETERS = ("max_tokens", "default_max_tokens", "tokens_per_minute", "gpu_memory_utilization",
              "max_model_len", "dtype", "enforce_eager")  # fmt: skip
LOAD_TIMEOUT_S = 900.0


def missing(has_vllm: bool, has_cuda: bool) -> str | None:
    """What keeps vLLM from serving here, in words; None when nothing does."""
    needs = []
    if not has_vllm:
        needs.append("the vllm package (pip install vllm), not installed")
    if not has_cuda:
        needs.append("a CUDA GPU visible to PyTorch, none found")
    return " and ".join(needs) or None


def _cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    torch = importlib.import_module("torch")
    return bool(torch.cuda.is_available())


@dataclass(frozen=True)
class VllmApi:
    """The parts of vLLM the engine uses, looked up once at load."""

    sampling_params: Any
    output_kind: Any
    tokens_prompt: Any

    @classmethod
    def load(cls) -> VllmApi:
        vllm = importlib.import_module("vllm")
        kinds = importlib.import_module("vllm.sampling_params").RequestOutputKind
        return cls(vllm.SamplingParams, kinds.DELTA, vllm.TokensPrompt)


@dataclass(eq=False)
class Handle:
    """One request in vLLM; ``finish`` is set when its last event has gone out."""

    id: str
    finish: str | None = None
    task: concurrent.futures.Future[None] | None = field(default=None, repr=False)


class VllmEngine:
    """vLLM's ``AsyncLLM`` behind the engine interface the generation routes use.

    Args:
        llm: the ``AsyncLLM``, created on ``loop``.
        loop: the event loop running on this engine's thread.
        vllm: the classes requests are built with.
        tokenizer: the model's tokenizer (encoding, chat template, token texts).
        max_context: most tokens (prompt and output) per sequence.
    """

    def __init__(self, llm: Any, loop: asyncio.AbstractEventLoop, vllm: VllmApi,
                 tokenizer: Any, max_context: int) -> None:  # fmt: skip
        self.llm = llm
        self.loop = loop
        self.vllm = vllm
        self.tokenizer = tokenizer
        self.max_context = max_context
        self.observer: Observer | None = None
        self.running = 0  # requests in vLLM (its own metrics have waiting and KV cache use)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def token_text(self, ids: Sequence[int]) -> list[str]:
        return [self.tokenizer.decode([i]) for i in ids]

    def submit(self, prompt: Sequence[int], params: SamplingParams, sink: Sink) -> Handle:
        """Hand a prompt to vLLM; events go to ``sink`` from the engine's thread."""
        handle = Handle(f"inferd-{uuid.uuid4().hex}")
        run = self._run(handle, list(prompt), params, sink)
        handle.task = asyncio.run_coroutine_threadsafe(run, self.loop)
        return handle

    def cancel(self, handle: Handle) -> None:
        """Stop the request: its task ends, which aborts it in vLLM. Thread-safe."""
        if handle.task is not None:
            handle.task.cancel()

    async def _run(self, handle: Handle, prompt: list[int], params: SamplingParams,
                   sink: Sink) -> None:  # fmt: skip
        api = self.vllm
        sampling = api.sampling_params(**sampling_kwargs(params), output_kind=api.output_kind)
        stream = OutputStream(top=params.logprobs, prompt_tokens=len(prompt))
        last = time.perf_counter()
        self.running += 1
        try:
            request = api.tokens_prompt(prompt_token_ids=prompt)
            async for output in self.llm.generate(request, sampling, handle.id):
                seen = stream.completion_tokens
                event = stream.event(output)
                last = self._timed(seen, stream.completion_tokens, last)
                _deliver(handle, sink, event)
        except asyncio.CancelledError:
            await self.llm.abort(handle.id)
            _deliver(handle, sink, stream.cancelled())
        except Exception as err:  # vLLM refused or failed the request: its caller hears why
            _deliver(handle, sink, stream.failed(f"vLLM: {type(err).__name__}: {err}"))
        finally:
            self.running -= 1
            if stream.finish is None:  # vLLM ended the stream without saying why
                _deliver(handle, sink, stream.failed("vLLM ended the request without a reason"))
            if self.observer is not None:
                self.observer.finished(stream.prompt_tokens, stream.completion_tokens,
                                       stream.finish or "error")  # fmt: skip
                self.observer.queues(self.running, 0, 0)

    def _timed(self, before: int, after: int, last: float) -> float:
        """Report the time to the first token, or per token since the last output."""
        now = time.perf_counter()
        if self.observer is not None and after > before:
            if before == 0:
                self.observer.first_token(now - last)
            else:
                self.observer.next_token((now - last) / (after - before))
        return now

    def stop(self) -> None:
        """Shut vLLM down and end the engine's loop."""
        self.llm.shutdown()
        self.loop.call_soon_threadsafe(self.loop.stop)


def _async_engine() -> Any:
    """vLLM's asynchronous engine class: ``AsyncLLM`` of the v1 engine (vLLM 0.8 and later),
    else ``AsyncLLMEngine`` (earlier versions, and an alias of it in some later ones)."""
    try:
        return importlib.import_module("vllm.v1.engine.async_llm").AsyncLLM
    except (ImportError, AttributeError):
        return import_framework("vllm", "vllm", "vllm").AsyncLLMEngine


def _deliver(handle: Handle, sink: Sink, event: Event) -> None:
    if handle.finish is not None:
        return
    if event.finish is not None:
        handle.finish = event.finish
    sink(event)


class VllmRuntime(TransformersRuntime):
    """A causal LM in vLLM; ``infer`` and ``warmup`` as for the transformers backend."""

    def __init__(self, config: ModelConfig, artifact: Path, device: str = "auto") -> None:
        super().__init__(config, artifact, device)
        self._thread: threading.Thread | None = None

    def load(self) -> None:
        """Check vLLM and a GPU are here, then start vLLM on its own event loop thread."""
        self.check_parameters(PARAMETERS)
        if not (self.artifact / "config.json").is_file():
            raise self.load_error(f"{self.artifact}: expected a save_pretrained folder with "
                                  "config.json, weights and the tokenizer")  # fmt: skip
        lacking = missing(importlib.util.find_spec("vllm") is not None, _cuda())
        if lacking:
            raise self.load_error(f"platform vllm needs {lacking}; use platform: transformers "
                                  "to serve this model without them")  # fmt: skip
        if self.requested_device not in ("auto", "cuda:0"):
            raise self.config_error("device", "vLLM places the model itself: use auto or cuda:0")
        self.max_tokens = self.int_parameter("max_tokens", 512)
        self.default_max_tokens = self.int_parameter("default_max_tokens", 16)
        if "tokens_per_minute" in self.config.parameters:
            self.tokens_per_minute = self.int_parameter("tokens_per_minute", 0)
        self.device = "cuda:0"
        self.engine = self._start()  # type: ignore[assignment]
        self._usage = MemoryUsage(device_bytes=self._reserved())

    def _reserved(self) -> int:
        """What vLLM takes of the GPU at start: ``gpu_memory_utilization`` of its memory
        (weights and the KV cache pool together), counted in the device memory budget."""
        torch = importlib.import_module("torch")
        total = int(torch.cuda.mem_get_info(0)[1])
        return int(total * self._utilization())

    def _utilization(self) -> float:
        share = self.config.parameters.get("gpu_memory_utilization", 0.9)
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
            raise self.config_error("parameters.gpu_memory_utilization",
                                    f"expected a number in (0, 1], got {share!r}")  # fmt: skip
        return float(share)

    def _start(self) -> VllmEngine:
        engine_class = _async_engine()
        arg_utils = import_framework("vllm.engine.arg_utils", "vllm", "vllm")
        transformers = import_framework("transformers", "vllm", "vllm")
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(self.artifact),
                                                               local_files_only=True)  # fmt: skip
        args = arg_utils.AsyncEngineArgs(**self._engine_args())
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="inferd-vllm", daemon=True)
        self._thread.start()

        async def create() -> Any:  # on the loop: AsyncLLM's tasks belong to it
            return engine_class.from_engine_args(args)

        try:
            llm = asyncio.run_coroutine_threadsafe(create(), loop).result(LOAD_TIMEOUT_S)
        except Exception as err:
            loop.call_soon_threadsafe(loop.stop)
            raise self.load_error(f"vLLM could not start: {type(err).__name__}: {err}") from err
        context = int(llm.model_config.max_model_len)
        return VllmEngine(llm, loop, VllmApi.load(), tokenizer, context)

    def _engine_args(self) -> dict[str, Any]:
        params = self.config.parameters
        args: dict[str, Any] = {
            "model": str(self.artifact),
            "tokenizer": str(self.artifact),
            "gpu_memory_utilization": self._utilization(),
            "dtype": str(params.get("dtype", "auto")),
            "enforce_eager": bool(params.get("enforce_eager", False)),
            "disable_log_stats": False,
        }
        if "max_model_len" in params:
            args["max_model_len"] = self.int_parameter("max_model_len", 0)
        return args

    def unload(self) -> None:
        engine: Any = self.engine
        if engine is not None:
            engine.stop()
            self.engine = None
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self._usage = MemoryUsage()
