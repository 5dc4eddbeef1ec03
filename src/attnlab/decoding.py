"""Greedy and beam search, written once against the incremental model interface.

Both searches are batched: they run the encoder once, then feed one token per step to
``decode_step`` for the rows that are still alive, following beam parents with
``reorder_decoder_state`` and dropping finished sentences from the batch (as fairseq does); see
:mod:`attnlab.models.interface`. The caller puts the model in ``eval()`` mode.

Conventions shared by both searches:

- **Max length.** Sentence ``i`` may generate at most ``int(max_len_a * src_len_i + max_len_b)``
  tokens before eos, ``src_len_i`` being its number of non-pad source positions. A hypothesis that
  has that many tokens gets eos *forced* at the next step (fairseq's rule), so every hypothesis ends
  in eos and its ``log_prob`` includes eos's model log-prob (not renormalised).
- **Min length.** eos has log-prob -inf until ``min_len`` tokens have been generated; the max length
  wins if the two conflict.
- **Length penalty** (beam only): GNMT, Wu et al. 2016, "Google's Neural Machine Translation
  System", Sec. 7, also used by the Transformer (Vaswani et al. 2017, alpha = 0.6)::

      score = log_prob / ((5 + |Y|) / 6) ** alpha        |Y| = generated tokens including eos

  alpha = 0 ranks by the plain sum of log-probs. As in fairseq, live beams are ranked by their raw
  sum of log-probs; the penalty is applied when a hypothesis finishes, to rank the finished ones.
- **Stopping** (beam): fairseq's rule. A sentence stops as soon as it has ``beam_size`` finished
  hypotheses (or hits its max length). This is not exhaustive under a length penalty (a longer live
  beam could still overtake a finished one), but it is what makes ``beam_size=1`` reproduce greedy
  search exactly, and it is the behaviour published fairseq numbers were obtained with.
- **Ties and precision.** Both searches break ties towards the lowest token id (beam: lowest
  ``beam * V + token``), as ``argmax`` does; ties are frequent with bf16/fp16 logits. Cumulative
  scores are float64 (float32 on MPS, which lacks it): float64 rounding of ``prefix + log_prob``
  is far finer than the spacing of float32 log-probs competing for the top, so it creates no new
  ties and ``beam_size=1`` ranks exactly like greedy's argmax (same tokens, same log-prob).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from attnlab import native
from attnlab.ctc_prefix import CTCPrefixScorer
from attnlab.models.interface import IncrementalSeq2Seq
from attnlab.models.linear import packed_weights

NEG_INF = -math.inf


@dataclass
class Hypothesis:
    tokens: list[int]  # generated ids, without bos and without the final eos
    score: float  # length-normalised score used for ranking (beam) / sum of log-probs (greedy)
    log_prob: float  # sum of token log-probs, eos included


def normalised_score(log_prob: float, length: int, alpha: float) -> float:
    """GNMT length penalty (Wu et al. 2016): ``log_prob / ((5 + length) / 6) ** alpha``."""
    return log_prob / ((5 + length) / 6) ** alpha


# ----------------------------------------------------------------------------------- helpers
def _score_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def _max_lengths(src_pad_mask: torch.Tensor, max_len_a: float, max_len_b: int) -> list[int]:
    src_lens = (~src_pad_mask).sum(1).tolist()
    return [int(max_len_a * n + max_len_b) for n in src_lens]


def _next_log_probs(
    logits: torch.Tensor,
    step: int,
    *,
    eos_id: int,
    min_len: int,
    force_eos: torch.Tensor | None,
) -> torch.Tensor:
    """Log-probs [N, V] for the token at position ``step`` (0-based, bos not counted), with the
    min-length and max-length constraints applied. ``force_eos`` [N] marks rows at max length."""
    lprobs = F.log_softmax(logits.float(), dim=-1)
    eos_lprob = lprobs[:, eos_id].clone()  # kept so forcing eos beats the min_len ban
    if step < min_len:
        lprobs[:, eos_id] = NEG_INF
    if force_eos is not None:
        lprobs.masked_fill_(force_eos[:, None], NEG_INF)
        lprobs[:, eos_id] = torch.where(force_eos, eos_lprob, lprobs[:, eos_id])
    return lprobs


def _row_topk(x: torch.Tensor, k: int, block: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``x.topk(k, dim=1)`` (the same values; tied ones may come from other positions), by
    blocks on a CPU. ATen's CPU top-k costs about 2 ns per element of every row, while a max
    per block of ``block`` elements is vectorised: the k best elements lie in the k blocks with
    the highest maxima, so only those blocks' elements go through a top-k (256 x 8000 fp32
    rows: 2.3 -> 1.5 ms). Any elements past the last whole block join the candidates as well.
    """
    n, v = x.shape
    blocks = v // block
    if x.device.type != "cpu" or blocks <= k or not x.is_contiguous():
        return x.topk(k, dim=1)
    whole = x[:, : blocks * block].view(n, blocks, block)
    best = whole.amax(dim=2).topk(k, dim=1).indices  # [n, k]
    if v == blocks * block:
        rows = torch.arange(n, device=x.device)[:, None] * blocks + best
        candidates = x.view(n * blocks, block).index_select(0, rows.view(-1)).view(n, k * block)
    else:
        starts = torch.arange(n, device=x.device)[:, None] * v + best * block
        flat = (starts[:, :, None] + torch.arange(block, device=x.device)).view(-1)
        candidates = x.reshape(-1).index_select(0, flat).view(n, k * block)
        candidates = torch.cat([candidates, x[:, blocks * block :]], dim=1)
    values, pos = candidates.topk(k, dim=1)
    in_block = best.gather(1, (pos // block).clamp_max(k - 1)) * block + pos % block
    past_blocks = blocks * block + pos - k * block  # the elements after the last whole block
    return values, torch.where(pos < k * block, in_block, past_blocks)


def _nan_message(values: torch.Tensor, step: int | None = None, rows: str = "rows") -> str:
    bad = int(torch.isnan(values).reshape(values.size(0), -1).any(1).sum())
    where = "" if step is None else f"decoding step {step}: "
    return (
        f"{where}the model's log-probs hold NaN in {bad} of {values.size(0)} {rows}, so no "
        "token can be ranked (diverged weights, or NaN in the inputs)"
    )


def _topk_lowest_index_first(
    x: torch.Tensor, k: int, spare: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x.topk(k, dim=1)`` with ties broken towards the lowest index, like ``argmax``.

    ``topk`` leaves tie order unspecified, and ties are common with bf16/fp16 logits; without a
    fixed rule beam 1 could pick a different token than greedy's argmax. The top ``k + spare``
    are taken (``spare`` defaults to ``k + 1``): when the last of them is below the k-th value,
    every entry tied with the k-th is among them, so ranking just those by (value, lowest index)
    is exact and no pass over the whole row (V wide) is needed. When a tie at the k-th value
    runs past them, the full path runs: with ``spare = k + 1`` that takes k + 2 or more equal
    values, rare even in bf16; ``spare = 1`` suits fp32 logits, where any tie is rare.
    """
    width = min(k + (k + 1 if spare is None else spare), x.size(1))
    top_values, top_idx = _row_topk(x, width)
    if width == x.size(1) or bool((top_values[:, k - 1] > top_values[:, width - 1]).all()):
        idx = top_idx.sort(dim=1).values  # the candidates in index order ...
        values = x.gather(1, idx)
        order = values.argsort(dim=1, descending=True, stable=True)[:, :k]  # ... ranked stably
        return values.gather(1, order), idx.gather(1, order)
    # Keep everything strictly above the k-th value, fill with its ties in index order.
    kth = top_values[:, k - 1 : k]
    above = x > kth
    at_kth = x == kth
    need = k - above.sum(1, keepdim=True)
    take = above | (at_kth & (at_kth.cumsum(1) <= need))
    if bool(torch.isnan(x).any()):  # NaN never equals the k-th value: rows would come up short
        raise ValueError(_nan_message(x))
    idx = take.nonzero()[:, 1].view(x.size(0), k)  # exactly k per row, ascending index
    values = x.gather(1, idx)
    order = values.argsort(dim=1, descending=True, stable=True)
    return values.gather(1, order), idx.gather(1, order)


def _best_extensions(
    scores: torch.Tensor, lprobs: torch.Tensor, width: int, spare: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``width`` best extensions of each sentence over its K beams x V tokens, ranked by
    cumulative score ``scores [n, K] + lprobs [n*K, V]``, ties to the lowest ``beam * V + token``
    (as one lowest-index-first top-k over the flattened K*V row). Returns (scores, beam, token),
    each ``[n, width]``, best first.

    A beam contributes at most ``width`` extensions to its sentence's best ``width``, so its own
    best ``width`` tokens suffice: the V-wide work is one top-k per beam in the logits' dtype,
    and only K*width candidates get the score dtype (the naive way adds and ranks n*K*V float64s;
    that was 40% of beam search time on a CPU). With float64 scores the adding cannot merge two
    different log-probs into a tie; with float32 scores (MPS only) it can, and such a tie may
    then go to a higher index than the naive way would give it. ``spare``: see
    :func:`_topk_lowest_index_first`.
    """
    per_beam = min(width, lprobs.size(1))
    beam_values, beam_tokens = _topk_lowest_index_first(lprobs, per_beam, spare)
    return _merge_beams(scores, beam_values, beam_tokens, width, lprobs.size(1))


def _merge_beams(
    scores: torch.Tensor,
    beam_values: torch.Tensor,
    beam_tokens: torch.Tensor,
    width: int,
    vocab: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_best_extensions` from each beam's best ``per_beam`` log-probs and tokens
    (``[n*K, per_beam]``, best first, ties to the lowest token)."""
    n, k = scores.shape
    per_beam = beam_values.size(1)
    cand = (scores[:, :, None] + beam_values.view(n, k, per_beam).to(scores.dtype)).view(n, -1)
    beams = torch.arange(k, device=scores.device)[:, None].expand(k, per_beam).reshape(1, -1)
    tokens = beam_tokens.view(n, -1)
    # Only K*width candidates per sentence: one stable sort of them, put in flattened-index
    # order first, ranks them with ties to the lowest index.
    by_index = (beams * vocab + tokens).argsort(dim=1)
    ranked = cand.gather(1, by_index).argsort(dim=1, descending=True, stable=True)[:, :width]
    pos = by_index.gather(1, ranked)
    return cand.gather(1, pos), beams.expand(n, -1).gather(1, pos), tokens.gather(1, pos)


def _ban_repeated_ngrams(lprobs: torch.Tensor, tokens: torch.Tensor, n: int) -> None:
    """Set to -inf, in place, every token that would complete an n-gram already in the row.

    ``tokens`` [N, t] holds the generated tokens (bos excluded). Vectorised over rows and n-grams:
    compare the last n-1 tokens with the first n-1 of every earlier n-gram, then ban the n-th token
    of each match. Counting with scatter_add (not scatter) keeps duplicate indices deterministic and
    avoids a host sync.
    """
    t = tokens.size(1)
    if t < n:  # no complete n-gram yet
        return
    ngrams = tokens.unfold(1, n, 1)  # [N, t - n + 1, n]
    prefix = tokens[:, t - n + 1 :]  # [N, n - 1], empty for n = 1 (then every seen token is banned)
    match = (ngrams[:, :, :-1] == prefix[:, None, :]).all(-1)  # [N, t - n + 1]
    hits = torch.zeros_like(lprobs).scatter_add_(1, ngrams[:, :, -1], match.to(lprobs.dtype))
    lprobs.masked_fill_(hits > 0, NEG_INF)


def _expand_for_beams(
    model: IncrementalSeq2Seq, enc: Any, state: Any, k: int, expand: torch.Tensor
) -> tuple[Any, Any]:
    """``enc`` and ``state`` of n sentences for K beams each (``expand``: each row K times):
    shared where the model can (``expand_for_beams``), else copied with the reorder methods."""
    share = getattr(model, "expand_for_beams", None)
    if share is not None:
        return share(enc, state, k)
    return model.reorder_encoder_out(enc, expand), model.reorder_decoder_state(state, expand)


# ------------------------------------------------------------------------------------- greedy
@torch.no_grad()
@packed_weights()  # the decoder weights serve every step: oneDNN lays them out once
def greedy_search(
    model: IncrementalSeq2Seq,
    src: torch.Tensor,
    src_pad_mask: torch.Tensor,
    *,
    bos_id: int,
    eos_id: int,
    max_len_a: float = 1.2,
    max_len_b: int = 10,
    min_len: int = 0,
) -> list[Hypothesis]:
    """Pick the argmax token at each step. Returns one hypothesis per sentence, in batch order;
    its ``score`` is the plain sum of log-probs."""
    device = src_pad_mask.device
    max_lens = _max_lengths(src_pad_mask, max_len_a, max_len_b)
    bsz = len(max_lens)

    enc = model.encode(src, src_pad_mask)
    state = model.init_decoder_state(enc)

    results: list[Hypothesis | None] = [None] * bsz
    active = list(range(bsz))  # original sentence index of each live row
    max_len_t = torch.tensor(max_lens, device=device)
    tokens = torch.empty(bsz, 0, dtype=torch.long, device=device)
    log_prob = torch.zeros(bsz, dtype=_score_dtype(device), device=device)
    prev = torch.full((bsz,), bos_id, dtype=torch.long, device=device)

    for step in range(max(max_lens, default=-1) + 1):
        logits, state = model.decode_step(prev, enc, state)
        at_max = any(max_lens[i] <= step for i in active)  # decided on the host: no sync
        force = max_len_t <= step if at_max else None
        # Ties go to the lowest id, as in argmax, on either path (the native one: see beam).
        fused = native.log_softmax_topk(
            logits, 1, eos=eos_id, ban_eos=step < min_len, force_eos=force
        )
        if fused is not None:
            tok_lprob, tok = fused[0][:, 0], fused[1][:, 0]
        else:
            lprobs = _next_log_probs(logits, step, eos_id=eos_id, min_len=min_len, force_eos=force)
            tok_lprob, tok = lprobs.max(dim=-1)
        if bool(torch.isnan(tok_lprob).any()):
            raise ValueError(_nan_message(tok_lprob[:, None], step))
        log_prob += tok_lprob
        done = tok == eos_id
        if force is not None:  # a row at max length is finished even if eos had log-prob -inf
            done |= force

        done_rows = done.nonzero().squeeze(1).tolist()
        if done_rows:
            done_lp, done_toks = log_prob[done].tolist(), tokens[done].tolist()
            for r, lp, toks in zip(done_rows, done_lp, done_toks, strict=True):
                results[active[r]] = Hypothesis(tokens=toks, score=lp, log_prob=lp)
            keep = (~done).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            # Drop finished sentences so later steps only run the live ones.
            active = [active[r] for r in keep.tolist()]
            enc = model.reorder_encoder_out(enc, keep)
            state = model.reorder_decoder_state(state, keep)
            tokens, log_prob, tok = tokens[keep], log_prob[keep], tok[keep]
            max_len_t = max_len_t[keep]

        tokens = torch.cat([tokens, tok[:, None]], dim=1)
        prev = tok

    assert all(h is not None for h in results), "every sentence finishes by its max length"
    return results  # type: ignore[return-value]


# --------------------------------------------------------------------------------------- beam
@torch.no_grad()
@packed_weights()
def beam_search(
    model: IncrementalSeq2Seq,
    src: torch.Tensor,
    src_pad_mask: torch.Tensor,
    *,
    bos_id: int,
    eos_id: int,
    beam_size: int = 4,
    length_penalty: float = 0.6,
    max_len_a: float = 1.2,
    max_len_b: int = 10,
    min_len: int = 0,
    no_repeat_ngram_size: int = 0,
    nbest: int = 1,
    ctc_weight: float = 0.0,
) -> list[list[Hypothesis]]:
    """Batched beam search. Returns, per sentence in batch order, its ``nbest`` finished
    hypotheses sorted best first by length-normalised ``score``.

    Each step scores all K x V extensions of a sentence's K beams by cumulative log-prob and takes
    the top 2K: each beam contributes at most one eos candidate, so at least K of them are not eos.
    eos candidates ranked in the top K are finished (fairseq); the best K others continue.
    Fewer than ``nbest`` hypotheses come back only when constraints ban every continuation.

    ``ctc_weight`` > 0 (a model with a CTC head) scores each extension jointly,
    ``(1 - w) * attention + w * CTC prefix`` log-probs (Watanabe et al. 2017; ctc_prefix.py).
    """
    if not 1 <= nbest <= beam_size:
        raise ValueError(f"need 1 <= nbest <= beam_size, got nbest={nbest}, beam_size={beam_size}")
    device = src_pad_mask.device
    k = beam_size
    max_lens = _max_lengths(src_pad_mask, max_len_a, max_len_b)
    bsz = len(max_lens)

    # Encode once and take the first step once per sentence: its K beams share the prefix (bos),
    # so their decoder states and cross-attention keys/values would be K copies of one. Only
    # then does each beam get its own copy (beam 4: 53.6 -> 58.5 sentences/s in bf16; within
    # the noise in fp32).
    enc = model.encode(src, src_pad_mask)
    state = model.init_decoder_state(enc)
    first_logits = None
    if bsz > 0:
        bos = torch.full((bsz,), bos_id, dtype=torch.long, device=device)
        first_logits, state = model.decode_step(bos, enc, state)
    expand = torch.arange(bsz, device=device).repeat_interleave(k)
    enc, state = _expand_for_beams(model, enc, state, k, expand)
    ctc_scorer = ctc_state = None
    if ctc_weight > 0:
        ctc_scorer = CTCPrefixScorer(blank=model.ctc.blank, eos=eos_id)
        ctc_state = ctc_scorer.initial_state(*model.ctc_log_probs(enc))

    finished: list[list[Hypothesis]] = [[] for _ in range(bsz)]
    active = list(range(bsz))  # original sentence index of each live sentence
    active_max = list(max_lens)
    max_len_t = torch.tensor(max_lens, device=device)
    beam_offsets = torch.arange(k, device=device)
    cand_rank = torch.arange(2 * k, device=device)

    # Only beam 0 is live at the start: the K beams share the same prefix, and giving the others
    # -inf keeps the first step from picking the same token K times.
    scores = torch.full((bsz, k), NEG_INF, dtype=_score_dtype(device), device=device)
    scores[:, 0] = 0.0
    tokens = torch.empty(bsz * k, 0, dtype=torch.long, device=device)  # [n * K, step]
    prev = torch.full((bsz * k,), bos_id, dtype=torch.long, device=device)

    for step in range(max(max_lens, default=-1) + 1):
        n = len(active)
        if step == 0:
            logits = first_logits.index_select(0, expand)
        else:
            logits, state = model.decode_step(prev, enc, state)
        at_max = any(m <= step for m in active_max)
        force = (max_len_t <= step).repeat_interleave(k) if at_max else None
        # Top 2K extensions of each sentence over its K beams x V tokens, by cumulative log-prob.
        # Without n-gram bans or CTC, one native pass per row takes its log-softmax and best
        # tokens, never writing the [rows, V] log-probs (outputs/measured/2026-12-03_s18_beam);
        # otherwise the log-probs are written out, changed, and ranked.
        fused = None
        if no_repeat_ngram_size == 0 and ctc_scorer is None:
            fused = native.log_softmax_topk(
                logits,
                min(2 * k, logits.size(1)),
                eos=eos_id,
                ban_eos=step < min_len,
                force_eos=force,
            )
        if fused is not None:
            cand_scores, cand_beam, cand_tok = _merge_beams(scores, *fused, 2 * k, logits.size(1))
        else:
            lprobs = _next_log_probs(logits, step, eos_id=eos_id, min_len=min_len, force_eos=force)
            if no_repeat_ngram_size > 0:
                _ban_repeated_ngrams(lprobs, tokens, no_repeat_ngram_size)
            if ctc_scorer is not None:
                ctc_scores, ctc_r, ctc_psi = ctc_scorer.score(ctc_state)
                # Floored, not -inf: a prefix CTC rules out must still be able to take forced eos.
                ctc_scores = ctc_scores.clamp_min(-1e4).to(lprobs.dtype)
                joint = (1.0 - ctc_weight) * lprobs + ctc_weight * ctc_scores
                # A banned token (-inf) stays banned: at weight 1, 0 * -inf would be NaN.
                lprobs = torch.where(torch.isneginf(lprobs), lprobs, joint)
            # fp32 logits rarely tie: one spare candidate per beam shows none straddles the cut.
            spare = 1 if logits.dtype in (torch.float32, torch.float64) else None
            try:
                cand_scores, cand_beam, cand_tok = _best_extensions(scores, lprobs, 2 * k, spare)
            except ValueError as err:  # NaN log-probs: say at which step
                raise ValueError(f"decoding step {step}: {err}") from None
        if bool(torch.isnan(cand_scores).any()):
            raise ValueError(_nan_message(cand_scores, step, rows="sentences"))
        is_eos = cand_tok == eos_id

        # Finish eos candidates ranked in the top K (a lower-ranked one would not have survived as
        # a live beam either); -inf ones are extensions of dead beams or banned, not hypotheses.
        fin = is_eos[:, :k] & torch.isfinite(cand_scores[:, :k])
        if fin.any():
            pos, rank = fin.nonzero(as_tuple=True)  # row-major: best rank first within a sentence
            rows = pos * k + cand_beam[pos, rank]
            fin_toks, fin_lp = tokens[rows].tolist(), cand_scores[pos, rank].tolist()
            for p, toks, lp in zip(pos.tolist(), fin_toks, fin_lp, strict=True):
                hyps = finished[active[p]]
                if len(hyps) < k:
                    score = normalised_score(lp, step + 1, length_penalty)
                    hyps.append(Hypothesis(tokens=toks, score=score, log_prob=lp))

        # The K best non-eos candidates continue: push eos ones past rank 2K, take the K smallest.
        keys = is_eos.long() * (2 * k) + cand_rank
        sel = keys.topk(k, dim=1, largest=False).indices
        new_scores = cand_scores.gather(1, sel)
        new_beam = cand_beam.gather(1, sel)
        new_tok = cand_tok.gather(1, sel)

        # A sentence is done with K finished hypotheses, at its max length (eos was forced), or
        # when every live beam is -inf (all continuations banned).
        alive = torch.isfinite(new_scores[:, 0]).tolist()
        keep = [
            p
            for p in range(n)
            if alive[p] and step < active_max[p] and len(finished[active[p]]) < k
        ]
        if not keep:
            break

        old_pos = torch.arange(n, device=device)
        if len(keep) < n:  # drop finished sentences from the batch
            old_pos = torch.tensor(keep, device=device)
            new_scores, new_beam, new_tok = new_scores[old_pos], new_beam[old_pos], new_tok[old_pos]
            enc = model.reorder_encoder_out(enc, (old_pos[:, None] * k + beam_offsets).view(-1))
            active = [active[p] for p in keep]
            active_max = [active_max[p] for p in keep]
            max_len_t = max_len_t[old_pos]

        # One index both drops finished sentences and follows each surviving beam's parent.
        parent = (old_pos[:, None] * k + new_beam).view(-1)
        state = model.reorder_decoder_state(state, parent)
        if ctc_scorer is not None:
            ctc_state = ctc_scorer.advance(ctc_state, ctc_r, ctc_psi, parent, new_tok.view(-1))
        tokens = torch.cat([tokens[parent], new_tok.view(-1, 1)], dim=1)
        scores = new_scores
        prev = new_tok.view(-1)

    return [sorted(h, key=lambda hyp: hyp.score, reverse=True)[:nbest] for h in finished]


# ----------------------------------------------------------------------------------- dispatch
def generate(
    model: IncrementalSeq2Seq,
    src: torch.Tensor,
    src_pad_mask: torch.Tensor,
    *,
    strategy: str,
    bos_id: int,
    eos_id: int,
    **kwargs: Any,
) -> list[list[Hypothesis]]:
    """Run ``"greedy"`` or ``"beam"`` search; always returns a list of hypotheses per sentence
    (greedy's single hypothesis wrapped in a 1-list). ``kwargs`` go to the search function."""
    if strategy == "greedy" and kwargs.get("ctc_weight", 0.0) > 0:
        # Joint CTC/attention scoring needs the prefix scorer: greedy is its beam of one.
        return beam_search(
            model,
            src,
            src_pad_mask,
            bos_id=bos_id,
            eos_id=eos_id,
            beam_size=1,
            length_penalty=0.0,
            **kwargs,
        )
    if strategy == "greedy":
        kwargs.pop("ctc_weight", None)  # 0 here: attention-only greedy search
        hyps = greedy_search(model, src, src_pad_mask, bos_id=bos_id, eos_id=eos_id, **kwargs)
        return [[h] for h in hyps]
    if strategy == "beam":
        return beam_search(model, src, src_pad_mask, bos_id=bos_id, eos_id=eos_id, **kwargs)
    raise ValueError(f"unknown decoding strategy {strategy!r}; expected 'greedy' or 'beam'")
