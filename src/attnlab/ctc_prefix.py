"""CTC prefix scores for joint CTC/attention decoding (Watanabe et al. 2017, "Hybrid
CTC/Attention Architecture for End-to-End Speech Recognition", Algorithm 2; ESPnet's
``CTCPrefixScoreTH``).

For a hypothesis ``g`` and every token ``c`` the scorer gives ``log p_ctc(g c ... | x)``, the
probability that the CTC output *starts with* ``g c``, and for ``c = eos`` the probability that
it is exactly ``g``. Beam search adds ``w * (psi(g c) - psi(g))`` to the attention log-prob of
``c``, so a hypothesis's joint score is ``(1 - w) log p_att + w log p_ctc``, which keeps the
attention decoder from dropping or repeating words: CTC's monotonic alignment forbids both.

Every hypothesis and every vocabulary entry is scored at once (``[T, N, V]`` tensors, one loop
over the encoder frames): vocabularies for speech (characters, small subword sets) are small.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NEG_INF = float("-inf")


@dataclass
class CTCPrefixState:
    r: torch.Tensor  # [T, N, 2]: log prob of g ending at frame t in a non-blank (0) / blank (1)
    psi: torch.Tensor  # [N]: prefix log-prob of g
    last: torch.Tensor  # [N]: last token of g (-1 for the empty prefix)
    x: torch.Tensor  # [T, N, V]: CTC log-probs of each row's utterance (frames past its end: blank)


class CTCPrefixScorer:
    def __init__(self, blank: int, eos: int):
        self.blank, self.eos = blank, eos

    def initial_state(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> CTCPrefixState:
        """``log_probs [N, T, V]`` and ``lengths [N]`` of the encoder CTC outputs."""
        x = log_probs.transpose(0, 1).float().clone()  # [T, N, V]
        frames, rows, _ = x.shape
        past_end = torch.arange(frames, device=x.device)[:, None] >= lengths[None, :]
        # Past its end an utterance only emits blanks with certainty: the scores stop changing.
        x.masked_fill_(past_end[:, :, None], NEG_INF)
        x[:, :, self.blank].masked_fill_(past_end, 0.0)
        r = x.new_full((frames, rows, 2), NEG_INF)
        r[:, :, 1] = x[:, :, self.blank].cumsum(0)  # the empty prefix: blanks only
        psi = x.new_zeros(rows)
        last = torch.full((rows,), -1, dtype=torch.long, device=x.device)
        return CTCPrefixState(r, psi, last, x)

    def score(self, state: CTCPrefixState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scores ``[N, V]`` (``psi(g c) - psi(g)``), plus what :meth:`advance` needs."""
        x, r_prev = state.x, state.r
        frames, rows, vocab = x.shape
        r_sum = torch.logaddexp(r_prev[:, :, 0], r_prev[:, :, 1])  # [T, N]
        # phi: the mass from which c can start a new label; if c repeats g's last token, only
        # paths ending in a blank can (otherwise the two would merge into one label).
        phi = r_sum[:, :, None].expand(frames, rows, vocab).clone()
        repeat = state.last >= 0
        if bool(repeat.any()):
            idx = repeat.nonzero().squeeze(1)
            phi[:, idx, state.last[idx]] = r_prev[:, idx, 1]
        r = x.new_full((frames, rows, vocab, 2), NEG_INF)
        empty = state.last < 0
        r[0, :, :, 0] = torch.where(empty[:, None], x[0], torch.full_like(x[0], NEG_INF))
        psi = r[0, :, :, 0].clone()
        blank = x[:, :, self.blank]
        for t in range(1, frames):
            r[t, :, :, 0] = torch.logaddexp(r[t - 1, :, :, 0], phi[t - 1]) + x[t]
            r[t, :, :, 1] = (
                torch.logaddexp(r[t - 1, :, :, 0], r[t - 1, :, :, 1]) + blank[t, :, None]
            )
            psi = torch.logaddexp(psi, phi[t - 1] + x[t])
        psi[:, self.eos] = r_sum[-1]  # g itself is the whole CTC output
        psi[:, self.blank] = NEG_INF
        return psi - state.psi[:, None], r, psi

    @staticmethod
    def advance(
        state: CTCPrefixState,
        r: torch.Tensor,
        psi: torch.Tensor,
        parents: torch.Tensor,
        tokens: torch.Tensor,
    ) -> CTCPrefixState:
        """The state of the hypotheses ``parents[i] + tokens[i]`` (rows of the last score)."""
        return CTCPrefixState(
            r[:, parents, tokens],
            psi[parents, tokens],
            tokens.clone(),
            state.x.index_select(1, parents),
        )
