"""Causal language models from transformers (``platform: transformers``), generating with
continuous batching (:class:`inferd.generative.engine.Engine`).

The artifact is a ``model.hf`` folder written by ``save_pretrained``: the model's config and
weights and its tokenizer. Nothing is downloaded. The OpenAI-compatible routes and the V2
generate extension talk to :attr:`TransformersRuntime.engine` directly and stream tokens;
``infer`` (the V2 infer path, with the batcher in front) answers whole texts:
input ``text_input`` BYTES [-1] -> output ``text_output`` BYTES [-1], greedy.

``parameters`` in model.yaml:

- ``max_running`` (16): sequences decoded together; 1 runs one at a time.
- ``token_budget`` (256): tokens fed to the model per step (decode + prompt chunks).
- ``max_tokens`` (512): the most a request may ask for.
- ``default_max_tokens`` (16): when a request does not say.
- ``max_context``: prompt + output tokens; default the model's ``max_position_embeddings``.
- ``tokens_per_minute``: this model's token budget on the generative endpoints (overrides
  ``INFERD_MODEL_TOKENS_PER_MINUTE``; 0 turns it off for this model).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from inferd.config import ModelConfig
from inferd.errors import InferenceFailed
from inferd.generative.engine import Engine
from inferd.generative.sampling import SamplingParams
from inferd.generative.sequence import SyncStream
from inferd.runtimes._device import gpu_index
from inferd.runtimes._memory import LoadMeter
from inferd.runtimes.base import MemoryUsage, Runtime, import_framework
from inferd.types import Signature, TensorSpec

PARAMETERS = ("max_running", "token_budget", "max_tokens", "default_max_tokens", "max_context",
              "tokens_per_minute")  # fmt: skip
INFER_TIMEOUT_S = 600.0


class TransformersRuntime(Runtime):
    """A causal LM and its tokenizer behind a continuous-batching engine."""

    generative = True

    def __init__(self, config: ModelConfig, artifact: Path, device: str = "auto") -> None:
        super().__init__(config, artifact, device)
        self.engine: Engine | None = None
        self.max_tokens = 512
        self.default_max_tokens = 16
        self.tokens_per_minute: int | None = None  # None: the server's setting
        self._usage: MemoryUsage | None = None

    def load(self) -> None:
        """Load model and tokenizer onto the device and start the engine thread."""
        self.check_parameters(PARAMETERS)
        torch = import_framework("torch", "transformers", "generative")
        transformers = import_framework("transformers", "transformers", "generative")
        if not (self.artifact / "config.json").is_file():
            raise self.load_error(f"{self.artifact}: expected a save_pretrained folder with "
                                  "config.json, weights and the tokenizer")  # fmt: skip
        self.device = self._place(torch)
        index = gpu_index(self.device)
        meter = LoadMeter(
            partial(torch.cuda.memory_allocated, index) if index is not None else None
        )
        with meter:
            model, tokenizer = self._read(transformers)
        self._usage = meter.usage(fallback=super().memory_bytes())
        positions = getattr(model.config, "max_position_embeddings", 2048)
        self.max_tokens = self.int_parameter("max_tokens", 512)
        self.default_max_tokens = self.int_parameter("default_max_tokens", 16)
        if "tokens_per_minute" in self.config.parameters:
            self.tokens_per_minute = self.int_parameter("tokens_per_minute", 0)
        self.engine = Engine(
            model, tokenizer, torch, transformers.DynamicCache,
            max_running=max(1, self.int_parameter("max_running", 16)),
            token_budget=max(1, self.int_parameter("token_budget", 256)),
            max_context=self.int_parameter("max_context", positions),
        )  # fmt: skip
        self.engine.start()

    def _read(self, transformers: Any) -> tuple[Any, Any]:
        """The model (on its device, in eval mode) and its tokenizer."""
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                str(self.artifact), local_files_only=True
            )
            model = transformers.AutoModelForCausalLM.from_pretrained(
                str(self.artifact), local_files_only=True
            )
        except (OSError, ValueError) as err:  # a folder of another model kind, missing files
            raise self.load_error(f"{self.artifact}: {err}") from err
        return model.to(self.device).eval(), tokenizer

    def memory_usage(self) -> MemoryUsage:
        """The weights: host RSS growth while loading (CPU), or ``torch.cuda.memory_allocated``
        growth (CUDA). The KV cache grows with traffic and is not in it (its gauge is
        ``inferd_generate_kv_cache_bytes``)."""
        if self._usage is None:
            return MemoryUsage(host_bytes=super().memory_bytes())
        return self._usage

    def memory_bytes(self) -> int:
        return self.memory_usage().total

    def _place(self, torch: Any) -> str:
        if self.requested_device == "cpu":
            return "cpu"
        if self.requested_device == "auto":
            return "cuda:0" if torch.cuda.is_available() else "cpu"
        if not torch.cuda.is_available():
            raise self.load_error(f"device {self.requested_device}: PyTorch sees no GPU")
        return self.requested_device

    def signature(self) -> Signature:
        return Signature(
            (TensorSpec("text_input", "BYTES", (-1,)),),
            (TensorSpec("text_output", "BYTES", (-1,)),),
        )

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Greedy continuations of each row of ``text_input``, generated together."""
        engine = self._engine()
        params = SamplingParams(max_tokens=self.default_max_tokens, temperature=0.0)
        streams = []
        for value in inputs["text_input"].reshape(-1):
            text = value.decode() if isinstance(value, bytes) else str(value)
            stream = SyncStream()
            engine.submit(engine.encode(text), params, stream.sink)
            streams.append(stream)
        outputs = []
        for stream in streams:
            text, final = stream.result(INFER_TIMEOUT_S)
            if final.finish == "error":
                raise InferenceFailed(self.config.name, self.model_version, final.error)
            outputs.append(text.encode())
        return {"text_output": np.array(outputs, dtype=np.object_)}

    def warmup(self, batch_sizes: list[int], iterations: int = 1) -> None:
        """One short greedy generation per batch size (prefill and decode run once)."""
        engine = self._engine()
        for rows in batch_sizes:
            streams = [SyncStream() for _ in range(rows)]
            for stream in streams:
                engine.submit(engine.encode("warmup"), SamplingParams(2, 0.0), stream.sink)
            for stream in streams:
                stream.result(INFER_TIMEOUT_S)

    def unload(self) -> None:
        if self.engine is not None:
            self.engine.stop()
            self.engine = None
        self._usage = MemoryUsage()

    def _engine(self) -> Engine:
        if self.engine is None:
            raise InferenceFailed(self.config.name, self.model_version, "the model is not loaded")
        return self.engine
