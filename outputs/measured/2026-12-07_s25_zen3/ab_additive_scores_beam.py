# Session 25: interleaved A/B of fp32 beam search with the Bahdanau RNN (the bench's beam
# section: beam 4, 32 new tokens, batch 64, vocab 8000; model@rnn_model=rnn_bahdanau): the
# additive scores by PyTorch ops against the native kernel (native.additive_scores). Same model;
# the kernel is switched off for the "pytorch" runs. Hypotheses compared.
import os, sys, statistics, torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B, native
from attnlab.decoding import generate
from attnlab.runtime import keep_freed_memory; keep_freed_memory()
conf = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../conf"))
with initialize_config_dir(config_dir=conf, version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", "model@rnn_model=rnn_bahdanau", *sys.argv[1:]])
b = cfg.beam
batch = B.source_batch(cfg, b.batch_size)
model = B.build_attnlab(cfg.rnn_model, cfg.vocab, torch.device("cpu"), cfg.seed).eval()
kernel = native.additive_scores
def search(name):
    native.additive_scores = kernel if name == "native" else (lambda *a: None)
    try:
        return B.attnlab_search(model, batch, "beam", b.new_tokens, beam_size=b.beam_size, length_penalty=b.length_penalty)
    finally:
        native.additive_scores = kernel
hyps = {}
for name in ("pytorch", "native"):
    native.additive_scores = kernel if name == "native" else (lambda *a: None)
    out = generate(model, batch.src, batch.src_pad_mask, strategy="beam", bos_id=B.BOS, eos_id=B.EOS,
                   max_len_a=0, max_len_b=b.new_tokens - 1, beam_size=b.beam_size, length_penalty=b.length_penalty)
    hyps[name] = [h[0].tokens for h in out]
    native.additive_scores = kernel
same = sum(x == y for x, y in zip(hyps["pytorch"], hyps["native"]))
print(f"best hypotheses identical for {same} of {len(hyps['native'])} sentences")
names = ["pytorch", "native"]
run = B.interleave(names, 1, int(os.environ.get("REPEATS", 8)), lambda n, r: search(n), torch.device("cpu"))
print(run.warmup_note("runs"))
for n in names:
    print(n, f"median {statistics.median([b.batch_size / s for s in run.seconds[n]]):.1f} sentences/s")
ratios = sorted(x / y for x, y in zip(run.seconds["pytorch"], run.seconds["native"]))
q = statistics.quantiles(ratios, n=4)
print(f"pytorch/native seconds: median {statistics.median(ratios):.3f}, IQR {q[0]:.3f}-{q[2]:.3f}, min {ratios[0]:.3f}, max {ratios[-1]:.3f}")
