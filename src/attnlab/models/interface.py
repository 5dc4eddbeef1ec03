"""The contract every attnlab model implements, so decoding is written once for all families.

A model is an ``nn.Module`` with:

- ``encode(src, src_pad_mask) -> enc``: run the encoder once. ``src`` is ``LongTensor[B, S]`` of
  token ids (or ``FloatTensor[B, T, F]`` of features); ``src_pad_mask`` is ``BoolTensor[B, S]``,
  True at padding. ``enc`` is any object the model understands.
- ``forward(src, src_pad_mask, tgt_in, target_positions=None) -> logits[B, T, V]``: teacher-
  forced pass. Given ``target_positions`` (flat indices into ``B * T`` of the non-padding
  targets, ``Batch.target_positions``) it returns ``[N, V]`` for just those and may skip the
  padding's work (the Transformer runs its position-wise layers on real tokens only).
- ``init_decoder_state(enc) -> state``: an empty incremental-decoding state (KV cache, RNN state).
- ``decode_step(prev_tokens, enc, state) -> (log_probs_or_logits[B, V], state)``: feed the last
  emitted token ``LongTensor[B]`` and get the next-token logits; ``state`` is updated.
- ``reorder_encoder_out(enc, index) -> enc`` and ``reorder_decoder_state(state, index) -> state``:
  ``index_select`` along the batch dimension (used to expand for beams and follow beam parents).
  Beam search reorders the state at every step but the encoder output only when sentences leave
  the batch: a parent is always a beam of the same sentence, whose encoder rows are identical. So
  whatever depends on the encoder output alone (the Transformer's cross-attention keys and
  values) belongs in ``enc`` and is not copied at every step.
- optionally ``expand_for_beams(enc, state, beams) -> (enc, state)``: both, for ``beams``
  consecutive decoder rows per sentence, without copying what the beams can share (the
  Transformer's beams share their sentence's encoder output and cross-attention keys/values, and
  their self-attention caches share past steps). ``reorder_encoder_out`` on the result still takes
  decoder-row indices, whole sentences at a time. Without it, beam search expands with the two
  reorder methods.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class IncrementalSeq2Seq(Protocol):
    def encode(self, src: torch.Tensor, src_pad_mask: torch.Tensor) -> Any: ...

    def init_decoder_state(self, enc: Any) -> Any: ...

    def decode_step(
        self, prev_tokens: torch.Tensor, enc: Any, state: Any
    ) -> tuple[torch.Tensor, Any]: ...

    def reorder_encoder_out(self, enc: Any, index: torch.Tensor) -> Any: ...

    def reorder_decoder_state(self, state: Any, index: torch.Tensor) -> Any: ...
