"""attnlab-bench runs every section on a tiny model and writes positive figures (no speed
targets: the numbers are printed for people, not asserted)."""

from __future__ import annotations

import importlib.util
import json
import mmap
from pathlib import Path

import pytest

from tests.conftest import compose_config

TINY = [
    "model=transformer_tiny",
    "~model@extra_models.base",  # the paper base is for the real run
    "rnn_model.embed_dim=16",
    "rnn_model.hidden_size=16",
    "rnn_model.encoder_layers=1",
    "rnn_model.decoder_layers=1",
    "data=toy",  # the padding and data sections on synthetic data: no files, no tokeniser training
    "vocab=40",
    "max_tokens=64",
    "min_len=3",
    "max_len=8",
    "batches=2",
    "warmup=1",
    "warmup_max=2",
    "steps=2",
    "peak.sizes=[64]",
    "peak.repeats=2",
    "beam.batch_size=3",
    "beam.new_tokens=4",
    "beam.repeats=1",
    "greedy_cache.batch_size=3",
    "greedy_cache.new_tokens=4",
    "greedy_cache.repeats=1",
    "padding.epochs=2",
    "data_loading.warmup=1",
    "data_loading.batches=2",
]


def touch_fresh_pages(pages: int) -> None:
    """Write to ``pages`` pages of a new anonymous mapping: one minor fault each."""
    size = pages * mmap.PAGESIZE
    with mmap.mmap(-1, size) as memory:
        if hasattr(mmap, "MADV_NOHUGEPAGE"):  # 4 KiB pages, not 2 MiB ones
            memory.madvise(mmap.MADV_NOHUGEPAGE)
        for offset in range(0, size, mmap.PAGESIZE):
            memory[offset] = 1


def growing_for(calls_that_fault: int):
    """A bench contender whose first calls take fresh memory, as a heap still growing does."""
    from attnlab.bench import SETTLED_FAULTS

    calls = {"steady": 0, "growing": 0}

    def run(name: str, round_index: int) -> int:
        calls[name] += 1
        if name == "growing" and calls[name] <= calls_that_fault:
            touch_fresh_pages(4 * SETTLED_FAULTS)
        return round_index

    return run


def test_the_warm_up_lasts_while_a_variant_still_takes_fresh_memory() -> None:
    import torch

    from attnlab.bench import interleave, minor_page_faults

    if minor_page_faults() is None:
        pytest.skip("this platform does not count page faults")
    cpu = torch.device("cpu")
    # Four rounds fault, the fifth is the first settled one: timing starts after it.
    timing = interleave(["steady", "growing"], 1, 3, growing_for(4), cpu, max_warmup=8)
    assert timing.warmup == 5
    assert {name: len(s) for name, s in timing.seconds.items()} == {"steady": 3, "growing": 3}
    assert timing.last == {"steady": 7, "growing": 7}  # the timed rounds were 5, 6 and 7
    assert timing.timed_rounds == range(5, 8) and timing.settled is True
    assert timing.warmup_note("steps") == "5 warm-up steps"
    assert interleave(["steady"], 1, 1, growing_for(0), cpu).warmup_note("runs") == "1 warm-up run"
    # No more than max_warmup rounds (and the note says the variant still faulted) ...
    capped = interleave(["steady", "growing"], 1, 2, growing_for(4), cpu, max_warmup=3)
    assert capped.warmup == 3 and capped.settled is False
    assert capped.warmup_note("runs") == "3 warm-up runs (still taking fresh memory)"
    # ... never fewer than warmup, and none at all with warmup=0.
    assert interleave(["steady", "growing"], 2, 2, growing_for(0), cpu, max_warmup=8).warmup == 2
    assert interleave(["steady", "growing"], 2, 2, growing_for(9), cpu).warmup == 2
    assert interleave(["steady", "growing"], 0, 2, growing_for(9), cpu, max_warmup=8).warmup == 0


def test_what_runs_between_rounds_is_followed_by_each_variant_in_turn() -> None:
    import torch

    from attnlab.bench import interleave

    calls: list[str] = []
    timing = interleave(
        ["a", "b", "c"],
        1,
        3,
        lambda name, r: calls.append(name),
        torch.device("cpu"),
        between_rounds=lambda r: calls.append(f"probe {r}"),
    )
    assert timing.warmup == 1
    assert calls == [
        *("a", "b", "c", "probe 0"),
        *("b", "c", "a", "probe 1"),
        *("c", "a", "b", "probe 2"),
        *("a", "b", "c", "probe 3"),
    ]


def test_on_cuda_a_growing_allocator_pool_also_holds_the_warm_up_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    import attnlab.bench
    from attnlab.bench import interleave

    # The CUDA caching allocator's pool, as the bench reads it, without a GPU: the contender
    # reserves more in its first three calls. Page faults are not counted here.
    pool = {"bytes": 0, "calls": 0}
    monkeypatch.setattr(attnlab.bench, "minor_page_faults", lambda: None)
    monkeypatch.setattr(attnlab.bench, "cuda_reserved", lambda device: pool["bytes"])

    def run(name: str, round_index: int) -> None:
        if name == "growing":
            pool["calls"] += 1
            if pool["calls"] <= 3:
                pool["bytes"] += 2**20

    timing = interleave(["steady", "growing"], 1, 2, run, torch.device("cpu"), max_warmup=8)
    assert timing.warmup == 4 and timing.settled is True


def test_bench_writes_a_positive_figure_for_every_section_and_compares_runs(
    tmp_path: Path,
) -> None:
    from attnlab.bench import HF_MISSING, run

    has_hf = importlib.util.find_spec("transformers") is not None
    cfg = compose_config(TINY, tmp_path, config_name="bench")
    result = run(cfg)

    written = json.loads((tmp_path / "bench.json").read_text())
    rows = written["rows"]
    expected = [
        "train/model/attnlab",
        "train/model/torch",
        "train/rnn/attnlab",
        "train/rnn/lstm",
        "flops/peak_fp32_matmul",
        "flops/peak_fp32_matmul_between_rounds",
        "flops/model/attnlab",
        "mfu/model/attnlab",
        "flops/rnn/lstm",
        "beam/model/attnlab",
        "greedy_cache/model/cached",
        "greedy_cache/model/no_cache",
        "padding/token_budget",
        "padding/source_tensors",
        "padding/target_tensors",
        "padding/random_fixed_size",
        "data/epoch_plan",
        "data/loader",
        "data/train_step",
    ]
    hf_rows = ["train/model/marian", "flops/model/marian", "beam/model/marian"]
    if has_hf:
        expected += hf_rows
    else:
        assert not set(hf_rows) & set(rows)
        assert HF_MISSING in written["notes"]
    assert set(expected) <= set(rows), sorted(set(expected) - set(rows))
    for name, row in rows.items():
        assert row["n"] == len(row["samples"]) >= 1, name
        assert 0 < row["min"] <= row["median"] <= row["max"], name
    assert rows["train/model/torch"]["ref"] == "train/model/attnlab"
    assert rows["train/model/torch"]["ratio"] > 0
    # The per-step speedup: attnlab's tokens/s over torch's, step by step (same batches).
    per_step = [
        ours / theirs
        for ours, theirs in zip(
            rows["train/model/attnlab"]["samples"],
            rows["train/model/torch"]["samples"],
            strict=True,
        )
    ]
    assert rows["speedup/model/torch"]["samples"] == pytest.approx(per_step)
    assert "speedup/rnn/lstm" in rows
    # Both searches were forced to the same number of new tokens.
    assert not [n for n in written["notes"] if "unequal new tokens" in n]
    assert result["rows"].keys() == rows.keys()

    # A second run compared with the first: one new/old ratio per row found in both.
    again = compose_config(
        [*TINY, "sections=[padding]", f"compare={tmp_path / 'bench.json'}"],
        tmp_path / "again",
        config_name="bench",
    )
    compared = run(again)["compare"]
    assert set(compared) == {
        "padding/token_budget",
        "padding/source_tensors",
        "padding/target_tensors",
        "padding/random_fixed_size",
        "data/epoch_plan",
    }
    assert all(r > 0 for r in compared.values())


def test_training_warms_up_on_every_distinct_batch_before_timing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import attnlab.bench
    from attnlab.bench import run

    def no_probe(self) -> float:
        raise AssertionError("the matmul probe ran without the flops section")

    monkeypatch.setattr(attnlab.bench.MatmulProbe, "__call__", no_probe)

    overrides = [*TINY, "sections=[train]", "huggingface=false", "warmup=0", "warmup_max=0"]
    rows = run(compose_config(overrides, tmp_path, config_name="bench"))["rows"]
    # batches=2: both batch shapes ran once untimed, though warmup=0 asked for none.
    assert "2 warm-up steps" in rows["train/model/attnlab"]["note"]
    assert "2 warm-up steps" in rows["train/model/torch"]["note"]


def test_mfu_divides_by_the_best_matmul_rate_also_between_training_rounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import attnlab.bench
    from attnlab.bench import run

    # The standalone peak as if taken in a moment the machine crawled: MFU must not use it.
    monkeypatch.setattr(attnlab.bench, "matmul_peak", lambda *args, **kwargs: [1e-3])
    overrides = [*TINY, "sections=[train,flops]", "huggingface=false", "torch_baseline=false"]
    rows = run(compose_config(overrides, tmp_path, config_name="bench"))["rows"]

    probes = rows["flops/peak_fp32_matmul_between_rounds"]["samples"]
    assert len(probes) == 2  # one after each timed round (steps=2) of the one group
    assert min(probes) > 1e-3
    flops = rows["flops/model/attnlab"]["samples"]
    expected = [100 * f / max(probes) for f in flops]
    assert rows["mfu/model/attnlab"]["samples"] == pytest.approx(expected)


def test_bench_in_bf16_trains_under_autocast_against_a_bf16_peak(tmp_path: Path) -> None:
    from attnlab.bench import run

    # rnn: both LSTM variants train under bf16 autocast, also where oneDNN has no bf16 LSTM.
    overrides = [*TINY, "sections=[train,rnn,flops]", "huggingface=false", "precision=bf16-mixed"]
    rows = run(compose_config(overrides, tmp_path, config_name="bench"))["rows"]
    assert "flops/peak_bf16_matmul" in rows and "flops/peak_fp32_matmul" not in rows
    assert "flops/peak_bf16_matmul_between_rounds" in rows
    assert rows["mfu/model/attnlab"]["median"] > 0
    assert rows["train/rnn/lstm"]["median"] > 0 and rows["train/rnn/attnlab"]["median"] > 0
    meta = json.loads((tmp_path / "bench.json").read_text())["meta"]
    assert meta["precision"] == "bf16-mixed"
    # which CPU and which matmul routing: machines change between runs
    assert set(meta["cpu"]) == {"vendor", "family", "model", "name", "vector"}
    assert isinstance(meta["onednn_fp32"], bool) and isinstance(meta["onednn_weight_grads"], bool)


def test_a_tiny_ratio_keeps_its_digits_in_the_table() -> None:
    from attnlab.bench import Row, results_table

    rows = [
        Row("data/loader", "batches/s", [455.6]),
        Row("data/train_step", "steps/s", [0.337], ref="data/loader"),
        Row("train/model/marian", "tokens/s", [391.86], ref="data/loader"),
    ]
    table = results_table({row.name: row.summary() for row in rows})
    assert "| 0.00074x loader |" in table  # not "0.00x"
    assert "| 0.86x loader |" in table  # two decimals as before


def test_bench_names_an_unknown_precision(tmp_path: Path) -> None:
    from attnlab.bench import run
    from attnlab.config_errors import ConfigError

    cfg = compose_config([*TINY, "precision=fp8"], tmp_path, config_name="bench")
    with pytest.raises(ConfigError, match="precision"):
        run(cfg)


def test_the_probe_between_rounds_times_onednn_where_the_peak_counts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Where oneDNN outruns torch.mm (2x on a Zen 5), a probe of torch.mm alone could never
    # catch a standalone oneDNN peak taken in a slow moment.
    import torch

    from attnlab.bench import MatmulProbe
    from attnlab.models import linear

    if not linear.onednn_available():
        pytest.skip("no oneDNN linear op here")
    calls = []
    real = linear.linear_onednn
    monkeypatch.setattr(
        linear, "linear_onednn", lambda a, b, *rest: calls.append(a.shape) or real(a, b, *rest)
    )
    assert MatmulProbe([32, 64], torch.device("cpu"), torch.float32, onednn=True)() > 0
    assert calls == [(32, 32), (64, 64)]
    calls.clear()
    MatmulProbe([32], torch.device("cpu"), torch.float32)()
    assert calls == []
