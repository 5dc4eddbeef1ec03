"""Text metrics with sacreBLEU (Post 2018): detokenised BLEU and chrF, with their signatures."""

from __future__ import annotations

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
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }
