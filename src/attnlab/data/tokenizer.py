"""Tokenisers: a joint SentencePiece model (Kudo & Richardson 2018) or a whitespace vocabulary.

Ids 0..3 are fixed for every tokeniser: pad, unk, bos, eos. The SentencePiece model is trained
once on the training texts and cached under a hash of those texts and the settings; the model's
bytes travel inside checkpoints, so a trained model never needs the data directory again.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from attnlab.config_errors import require
from attnlab.data.files import atomic_write_bytes

PAD, UNK, BOS, EOS = 0, 1, 2, 3


class SentencePieceTokenizer:
    kind = "sentencepiece"

    def __init__(self, model_bytes: bytes):
        import sentencepiece as spm

        self.model_bytes = model_bytes
        self.processor = spm.SentencePieceProcessor(model_proto=model_bytes)
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = PAD, UNK, BOS, EOS

    @property
    def vocab_size(self) -> int:
        return self.processor.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.processor.encode(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.processor.encode(list(texts))

    def decode(self, ids: Sequence[int]) -> str:
        return self.processor.decode([i for i in ids if i > EOS])

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return [self.processor.id_to_piece(i) for i in ids]

    def to_bytes(self) -> bytes:
        return self.model_bytes

    @staticmethod
    def check_settings(
        vocab_size: int = 8000,
        model_type: str = "unigram",
        character_coverage: float = 1.0,
        input_sentence_size: int = 2_000_000,
        user_defined_symbols: Sequence[str] = (),
    ) -> None:
        """The settings ``train_or_load`` takes, checked before any text is read."""
        require(vocab_size > 4, "vocab_size", f"must be > 4, got {vocab_size}")
        require(
            model_type in ("unigram", "bpe", "char", "word"),
            "model_type",
            f"must be unigram, bpe, char or word, got {model_type!r}",
        )
        require(
            0 < character_coverage <= 1,
            "character_coverage",
            f"must be in (0, 1], got {character_coverage}",
        )
        require(input_sentence_size > 0, "input_sentence_size", "must be positive")

    @classmethod
    def train_or_load(
        cls,
        texts: Iterable[str],
        cache_dir: Path,
        vocab_size: int = 8000,
        model_type: str = "unigram",
        character_coverage: float = 1.0,
        input_sentence_size: int = 2_000_000,
        user_defined_symbols: Sequence[str] = (),
    ) -> SentencePieceTokenizer:
        import sentencepiece as spm

        cls.check_settings(vocab_size, model_type, character_coverage, input_sentence_size)
        texts = list(texts)
        settings = dict(
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            input_sentence_size=input_sentence_size,
            user_defined_symbols=list(user_defined_symbols),
            version=1,
        )
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        for text in texts:
            digest.update(text.encode("utf-8") + b"\n")
        path = Path(cache_dir) / f"spm-{digest.hexdigest()[:20]}.model"
        if path.exists():
            return cls(path.read_bytes())
        model = io.BytesIO()
        if len(texts) > input_sentence_size:
            # An evenly spaced sample, so both languages (sources first, then targets) and every
            # corpus of a concatenation are represented; deterministic, unlike SentencePiece's.
            stride = -(-len(texts) // input_sentence_size)
            texts = texts[::stride]
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            input_sentence_size=input_sentence_size,
            # No sampling or shuffling of the input: the same texts always give the same model.
            shuffle_input_sentence=False,
            pad_id=PAD,
            unk_id=UNK,
            bos_id=BOS,
            eos_id=EOS,
            user_defined_symbols=list(user_defined_symbols),
            num_threads=2,
            minloglevel=2,
        )
        atomic_write_bytes(path, model.getvalue())
        return cls(model.getvalue())


class WordTokenizer:
    """Whitespace-separated symbols, one id each (toy task, character targets)."""

    kind = "word"

    def __init__(self, symbols: Sequence[str]):
        self.symbols = ["<pad>", "<unk>", "<s>", "</s>", *symbols]
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = PAD, UNK, BOS, EOS

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(s, UNK) for s in text.split()]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.symbols[i] for i in ids if i > EOS)

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return [self.symbols[i] for i in ids]

    def to_bytes(self) -> bytes:
        return "\n".join(self.symbols[4:]).encode("utf-8")

    @classmethod
    def train_or_load(
        cls, texts: Iterable[str], cache_dir: Path | None = None, **_: object
    ) -> WordTokenizer:
        counts = Counter(s for text in texts for s in text.split())
        return cls(sorted(counts))


class CharTokenizer(WordTokenizer):
    """One id per character, the space included (character targets for speech recognition)."""

    kind = "char"

    def encode(self, text: str) -> list[int]:
        return [self.index.get(c, UNK) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.symbols[i] for i in ids if i > EOS)

    def to_bytes(self) -> bytes:
        return json.dumps(self.symbols[4:], ensure_ascii=False).encode("utf-8")

    @classmethod
    def train_or_load(
        cls, texts: Iterable[str], cache_dir: Path | None = None, **_: object
    ) -> CharTokenizer:
        return cls(sorted({c for text in texts for c in text}))


def tokenizer_from_bytes(kind: str, data: bytes) -> SentencePieceTokenizer | WordTokenizer:
    """Rebuild the tokenizer stored in a checkpoint."""
    if kind == SentencePieceTokenizer.kind:
        return SentencePieceTokenizer(data)
    if kind == CharTokenizer.kind:
        return CharTokenizer(json.loads(data.decode("utf-8")))
    if kind == WordTokenizer.kind:
        return WordTokenizer(data.decode("utf-8").split("\n") if data else [])
    raise ValueError(f"unknown tokenizer kind {kind!r} in checkpoint")


TOKENIZERS = {
    "sentencepiece": SentencePieceTokenizer,
    "word": WordTokenizer,
    "char": CharTokenizer,
}
