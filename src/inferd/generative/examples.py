"""A tiny causal LM built locally, for tests, benchmarks and trying the platform offline.

Nothing is downloaded: the tokenizer is a byte-level BPE trained on a few sentences (any text
encodes, every id decodes), the model a two-layer Llama with random weights from a seed. Its
output is gibberish, but deterministic, which is all the tests need to compare engines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inferd.runtimes.base import import_framework

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "inferd serves models over HTTP and gRPC with dynamic batching.",
    "Continuous batching lets new sequences join between decode steps.",
    "Hello, world! How are you today? I am fine, thank you.",
    "0123456789 + - * / = ( ) [ ] { } < > : ; , . ! ?",
]
VOCAB_SIZE = 384
# Random weights at the library's default scale (0.02) give near-uniform logits, whose argmax
# flips on rounding noise; a larger scale makes greedy decoding robust to batching order.
INIT_RANGE = 0.3


def build_tokenizer(path: Path) -> Any:
    """Train a byte-level BPE tokenizer and save it (``save_pretrained``) into ``path``."""
    tokenizers = import_framework("tokenizers", "transformers", "generative")
    transformers = import_framework("transformers", "transformers", "generative")
    byte_level = tokenizers.pre_tokenizers.ByteLevel
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = byte_level(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=byte_level.alphabet(), show_progress=False,
    )  # fmt: skip
    tok.train_from_iterator(CORPUS, trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.save_pretrained(str(path))
    return fast


def build_tiny_model(path: Path, seed: int = 0, layers: int = 2, hidden: int = 64) -> Path:
    """Save a tiny random Llama and its tokenizer into ``path`` (a ``model.hf`` folder).

    Args:
        path: the folder to create.
        seed: seeds the random weights.
        layers: decoder layers.
        hidden: hidden size (4 attention heads, 2 key/value heads).

    Returns:
        ``path``.
    """
    torch = import_framework("torch", "transformers", "generative")
    transformers = import_framework("transformers", "transformers", "generative")
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(path)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=1024, initializer_range=INIT_RANGE,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(path))
    return path
