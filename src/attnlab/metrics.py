"""Scores of decoded outputs, by task: sacreBLEU for translation, ROUGE for summaries, WER and
CER for speech recognition.

Every scorer returns its metrics plus ``score``, the task's headline number (higher is better),
which checkpointing and early stopping can monitor whatever the task.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sacrebleu.metrics import BLEU, CHRF


def translation_scores(
    hypotheses: Sequence[str], references: Sequence[str]
) -> dict[str, float | str]:
    """Corpus BLEU and chrF of detokenised hypotheses against one reference each.

    The numbers equal ``sacrebleu REF < HYP`` and ``sacrebleu -m chrf REF < HYP`` on the same
    files; the signatures say exactly how they were computed.
    """
    bleu, chrf = BLEU(), CHRF()
    refs = [list(references)]
    bleu_score = bleu.corpus_score(list(hypotheses), refs)
    chrf_score = chrf.corpus_score(list(hypotheses), refs)
    exact = sum(h == r for h, r in zip(hypotheses, references, strict=True))
    return {
        "bleu": bleu_score.score,
        "exact_match": 100.0 * exact / max(len(references), 1),
        "chrf": chrf_score.score,
        "score": bleu_score.score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _sentences_on_lines(text: str) -> str:
    # ROUGE-Lsum scores sentence by sentence, one per line; outputs come as one line.
    return "\n".join(_SENTENCE_END.split(text.strip()))


def summary_scores(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> dict[str, float | str]:
    """ROUGE-1/2/L/Lsum F1 (x100, Porter stemming, as in the usual ROUGE setup), averaged over
    examples, against the first reference (what published baselines quote) and, where examples
    have several, against all of them (``*_multi``: the best-matching reference per example)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)
    first = {key: 0.0 for key in ROUGE_KEYS}
    multi = {key: 0.0 for key in ROUGE_KEYS}
    several = any(len(refs) > 1 for refs in references)
    for hypothesis, refs in zip(hypotheses, references, strict=True):
        prediction = _sentences_on_lines(hypothesis)
        scored = [scorer.score(_sentences_on_lines(ref), prediction) for ref in refs]
        for key in ROUGE_KEYS:
            first[key] += scored[0][key].fmeasure
            multi[key] += max(s[key].fmeasure for s in scored)
    n = max(len(hypotheses), 1)
    scores: dict[str, float | str] = {key: 100.0 * first[key] / n for key in ROUGE_KEYS}
    if several:
        scores.update({f"{key}_multi": 100.0 * multi[key] / n for key in ROUGE_KEYS})
    scores["score"] = scores["rougeL"]
    scores["rouge_signature"] = "rouge-score|F1|stemmer:porter|lsum-split:sentence-end"
    return scores


def recognition_scores(
    hypotheses: Sequence[str], references: Sequence[str]
) -> dict[str, float | str]:
    """Corpus word and character error rates (x100) through torchmetrics: edit distance summed
    over the corpus divided by the reference length (words; characters, spaces included, as
    ESPnet's CER). ``score`` is ``100 - WER`` so that higher is better, as for every task."""
    from torchmetrics.functional.text import char_error_rate, word_error_rate

    hyps, refs = list(hypotheses), list(references)
    wer = 100.0 * float(word_error_rate(hyps, refs)) if refs else 0.0
    cer = 100.0 * float(char_error_rate(hyps, refs)) if refs else 0.0
    exact = sum(h == r for h, r in zip(hyps, refs, strict=True))
    return {
        "wer": wer,
        "cer": cer,
        "sentence_accuracy": 100.0 * exact / max(len(refs), 1),
        "score": 100.0 - wer,
        "wer_signature": "torchmetrics|wer+cer|case:as-is|punct:as-is",
    }


def task_scores(
    metric: str, hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> dict[str, float | str]:
    """``metric`` is a task's ``metric`` attribute: ``bleu``, ``rouge`` or ``wer``."""
    if metric == "rouge":
        return summary_scores(hypotheses, references)
    if metric == "wer":
        return recognition_scores(hypotheses, [refs[0] for refs in references])
    if metric == "bleu":
        return translation_scores(hypotheses, [refs[0] for refs in references])
    raise ValueError(f"unknown metric {metric!r}; expected 'bleu', 'rouge' or 'wer'")
