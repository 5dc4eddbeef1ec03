"""Hybrid CTC/attention: the CTC prefix scorer against torch's CTC loss, and joint decoding."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from attnlab.ctc_prefix import CTCPrefixScorer
from attnlab.data.tokenizer import BOS
from attnlab.decoding import beam_search, generate
from attnlab.losses import LabelSmoothedCrossEntropy
from tests.test_transformer import tiny

BLANK, EOS = 0, 3


def _sequence_log_prob(scorer, log_probs, lengths, tokens):
    """Walk the scorer along ``tokens`` then eos; the summed scores are log p_ctc(tokens | x)."""
    state = scorer.initial_state(log_probs, lengths)
    total = torch.zeros(log_probs.size(0), dtype=torch.float64)
    rows = torch.arange(log_probs.size(0))
    for column in range(tokens.size(1)):
        scores, r, psi = scorer.score(state)
        total += scores[rows, tokens[:, column]].double()
        state = scorer.advance(state, r, psi, rows, tokens[:, column])
    scores, _, _ = scorer.score(state)
    return total + scores[:, EOS].double()


def test_prefix_scores_add_up_to_the_ctc_probability_of_the_whole_sequence():
    torch.manual_seed(0)
    log_probs = torch.randn(3, 12, 9).log_softmax(-1)
    lengths = torch.tensor([12, 9, 6])
    tokens = torch.tensor([[4, 5, 5, 6], [7, 4, 8, 8], [5, 6, 7, 4]])  # repeats included
    scorer = CTCPrefixScorer(blank=BLANK, eos=EOS)
    joint = _sequence_log_prob(scorer, log_probs, lengths, tokens)
    expected = -F.ctc_loss(
        log_probs.transpose(0, 1),
        tokens,
        lengths,
        torch.full((3,), 4),
        blank=BLANK,
        reduction="none",
    )
    torch.testing.assert_close(joint.float(), expected, rtol=1e-4, atol=1e-4)


def test_prefix_scores_never_favour_an_impossible_extension():
    # Three frames hold "a a" only as (a, blank, a): neither a third "a" nor any other token fits.
    log_probs = torch.full((1, 3, 6), -2.0).log_softmax(-1)
    scorer = CTCPrefixScorer(blank=BLANK, eos=EOS)
    state = scorer.initial_state(log_probs, torch.tensor([3]))
    rows = torch.tensor([0])
    for _ in range(2):
        _, r, psi = scorer.score(state)
        state = scorer.advance(state, r, psi, rows, torch.tensor([4]))
    scores, _, _ = scorer.score(state)
    assert scores[0, 4] == float("-inf")
    assert scores[0, 5] == float("-inf")
    assert torch.isfinite(scores[0, EOS])


def test_joint_loss_mixes_attention_and_ctc_by_weight():
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 9)
    target = torch.tensor([[5, 6, 7, EOS], [4, 8, EOS, 0]])
    ctc = (torch.randn(2, 10, 9).log_softmax(-1), torch.tensor([10, 7]))
    attention_only, nll = LabelSmoothedCrossEntropy(0.0)(logits, target)
    joint, joint_nll = LabelSmoothedCrossEntropy(0.0, ctc_weight=0.3)(logits, target, ctc)
    ctc_sum = F.ctc_loss(
        ctc[0].transpose(0, 1), target, ctc[1], torch.tensor([3, 2]), reduction="sum"
    )
    torch.testing.assert_close(joint, 0.7 * attention_only + 0.3 * ctc_sum)
    torch.testing.assert_close(joint_nll, nll)


def speech_model_with_ctc():
    return tiny(
        share_embeddings=False,
        input_dim=20,
        frontend={"kind": "conv2d", "channels": 4, "spec_augment": None},
        ctc_head=True,
    )


def test_beam_search_asked_through_generate_scores_jointly_with_ctc():
    # What eval, validation and predict call: decode.ctc_weight must reach the beam search.
    model = speech_model_with_ctc()
    src, pad = torch.randn(3, 48, 20), torch.zeros(3, 48, dtype=torch.bool)
    settings = dict(bos_id=BOS, eos_id=EOS, beam_size=3, length_penalty=0.0, max_len_a=0.25)

    def scores(nbest):
        return [[round(h.score, 5) for h in hyps] for hyps in nbest]

    with torch.no_grad():
        joint = scores(generate(model, src, pad, strategy="beam", ctc_weight=0.5, **settings))
        direct = scores(beam_search(model, src, pad, ctc_weight=0.5, **settings))
        attention_only = scores(beam_search(model, src, pad, **settings))
    assert joint == direct
    assert joint != attention_only


def test_ctc_weight_one_keeps_bans_and_finds_hypotheses():
    # At weight 1 the attention's log-probs weigh nothing, but its bans (eos before min_len,
    # every token but eos at max length) must hold: 0 * -inf is NaN, not a ban.
    model = speech_model_with_ctc()
    src, pad = torch.randn(2, 48, 20), torch.zeros(2, 48, dtype=torch.bool)
    with torch.no_grad():
        nbest = beam_search(
            model,
            src,
            pad,
            bos_id=BOS,
            eos_id=EOS,
            beam_size=3,
            max_len_a=0.25,
            min_len=2,
            ctc_weight=1.0,
        )
    for hyps in nbest:
        assert hyps and all(math.isfinite(h.score) and len(h.tokens) >= 2 for h in hyps)
