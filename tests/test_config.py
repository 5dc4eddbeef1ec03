"""Configs compose, build, and refuse mistakes before any training, naming the key."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
from hydra.utils import instantiate

from attnlab.config import validate_train_config
from attnlab.config_errors import ConfigError
from attnlab.data.arguments import ARGUMENT_CHECKS as DATA_ARGUMENT_CHECKS
from attnlab.models.arguments import ARGUMENT_CHECKS
from attnlab.signatures import NO_DEFAULT, source_signature

MODELS = [
    "transformer",
    "transformer_small",
    "transformer_big",
    "transformer_tiny",
    "rnn_bahdanau",
    "rnn_luong",
]
DATA = ["toy", "multi30k", "multi30k_en_de", "dialogsum", "wmt14_en_de"]


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("model", MODELS)
def test_every_model_and_data_config_composes_and_builds(make_cfg, model, data):
    cfg = make_cfg(f"model={model}", f"data={data}", base=["logger=csv"])
    validate_train_config(cfg)  # builds the model on the meta device and the datamodule
    datamodule = instantiate(cfg.data)
    assert datamodule.valid_split in datamodule.task.splits


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        (["model.n_heads=3"], "model.n_heads", "not divisible"),
        (["model.dropout=-0.1"], "model.dropout", "[0, 1)"),
        (["data.valid_split=dev"], "data.valid_split", "unknown split"),
        (["data.test_splits=[test,nope]"], "data.test_splits", "unknown split"),
        (["+model.d_modle=64"], "model.d_modle", "did you mean 'd_model'"),
        (["model.d_model=wide"], "model.d_model", "expected int"),
        (["model.norm_position=middle"], "model.norm_position", "post"),
        (["criterion.label_smoothing=1.5"], "criterion.label_smoothing", "[0, 1)"),
        (["decode=beam", "decode.beam_size=0"], "decode.beam_size", "invalid"),
        (["decode.strategy=sample"], "decode.strategy", "greedy"),
        (["data.max_tokens=16"], "data.max_tokens", "longest"),
        (["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches", ">= 1"),
        (["trainer=ddp_cpu", "trainer.devices=0"], "trainer.devices", "positive count"),
        (
            ["data.max_source_positions=600", "data.max_tokens=1024"],
            "model.max_positions",
            "shorter than the data",
        ),
        (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val", ">= 0"),
        (["+data.train_overlong=cut"], "data.train_overlong", "'drop' or 'truncate'"),
        (
            ["callbacks.checkpoint_on_signal.signals=[SIGNOPE]"],
            "callbacks.checkpoint_on_signal.signals",
            "unknown signal",
        ),
        (["+trainer.max_epoch=3"], "trainer.max_epoch", "did you mean 'max_epochs'"),
        (["data.eval_max_tokens=0"], "data.eval_max_tokens", "positive"),
        (["data.num_workers=-1"], "data.num_workers", ">= 0"),
        (["optim.scheduler.warmup_steps=0"], "optim.scheduler.warmup_steps", "positive"),
        (["optim.optimizer.lr=-0.1"], "optim.optimizer", "Invalid learning rate"),
        (["average_last=-2"], "average_last", ">= 0"),
        (["onednn_linear=yes"], "onednn_linear", "true, false or auto"),
        (
            [
                "trainer.precision=bf16-mixed",
                "trainer.gradient_clip_val=1.0",
                "optim.optimizer.fused=true",
            ],
            "optim.optimizer.fused",
            "cannot clip",
        ),
        # Settings of a real corpus, still refused before anything is read.
        (["data=multi30k", "data.task.target_lang=de"], "data.task.target_lang", "differ"),
        (["data=multi30k", "data.tokenizer.model_type=bigram"], "data.tokenizer.model_type", "bpe"),
        (["data=multi30k", "+data.tokenizer.vocab=300"], "data.tokenizer.vocab", "vocab_size"),
        (
            ["data=an4", "data.max_tokens=12000", "data.features.frame_shift_ms=0"],
            "data.features.frame_shift_ms",
            "> 0",
        ),
        (
            ["data=an4", "data.max_tokens=12000", "data.features.frame_length_ms=5"],
            "data.features.frame_length_ms",
            ">= frame_shift_ms",
        ),
        (
            ["data=an4", "data.max_tokens=12000", "data.features.sample_rate=0"],
            "data.features.sample_rate",
            "> 0",
        ),
        (
            ["data=an4", "data.max_tokens=12000", "data.features.num_mel_bins=0"],
            "data.features.num_mel_bins",
            ">= 1",
        ),
    ],
)
def test_bad_config_fails_before_training_naming_the_key(make_cfg, overrides, key, words):
    cfg = make_cfg(*overrides)
    with pytest.raises(ConfigError) as error:
        validate_train_config(cfg)
    assert error.value.key == key
    assert words in str(error.value)


def test_paper_schedule_peak_is_d_model_and_warmup_dependent(make_cfg):
    cfg = make_cfg("optim=noam_paper", "model=transformer", base=["logger=csv"])
    assert cfg.optim.optimizer.lr == pytest.approx(512**-0.5 * 4000**-0.5)


def test_cli_reports_config_error_with_key_and_nonzero_exit(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "attnlab.train",
            "experiment=toy",
            "model.n_heads=3",
            f"hydra.run.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "model.n_heads" in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.n_heads=3", "model.n_heads"),
        ("+model.d_modle=64", "model.d_modle"),
        ("model.dropout=-0.1", "model.dropout"),
        ("model=rnn_luong model.score=cosine", "model.score"),
        ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches"),
        ("decode.strategy=sample", "decode.strategy"),
        ("average_last=-1", "average_last"),
        ("onednn_linear=sometimes", "onednn_linear"),
        ("data.test_splits=[test,nope]", "data.test_splits"),
        ("data.max_tokens=16", "data.max_tokens"),
        ("data=dialogsum data.valid_split=nope", "data.valid_split"),
        ("data.tokenizer.model_type=bigram", "data.tokenizer.model_type"),
        ("data=an4 data.valid_split=nope", "data.valid_split"),
        ("data=an4 +data.features.num_mel_binz=80", "data.features.num_mel_binz"),
        ("data=an4 +data.max_tokns=5000", "data.max_tokns"),
        ("data=an4 data.speed_perturb=[3.0]", "data.speed_perturb"),
    ],
)
def test_common_config_errors_are_named_before_torch_is_imported(tmp_path, override, key):
    # Importing torch takes seconds on a small machine; these mistakes must not wait for it.
    result = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "attnlab.train",
            *override.split(),
            f"hydra.run.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert f"config error: {key}:" in result.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "torch" not in imported


@pytest.mark.parametrize("target", sorted(ARGUMENT_CHECKS))
def test_source_signatures_match_the_imported_models(target):
    from hydra.utils import get_object

    imported = inspect.signature(get_object(target).__init__).parameters
    read = source_signature(target)
    assert read.parameters == tuple(name for name in imported if name != "self")
    for name, parameter in imported.items():
        if name != "self":
            default = parameter.default
            assert read.defaults[name] == (
                NO_DEFAULT if default is inspect.Parameter.empty else default
            )
    # each argument check takes only arguments the model has
    assert set(inspect.signature(ARGUMENT_CHECKS[target]).parameters) <= set(read.parameters)


def _parameters_a_user_can_pass(cls: type) -> dict[str, inspect.Parameter]:
    """``cls.__init__``'s parameters, and its bases' where it takes ``**kwargs`` for them."""
    own = dict(inspect.signature(cls.__init__).parameters)
    own.pop("self")
    forwards = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in own.values())
    own = {n: p for n, p in own.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
    if forwards and cls.__mro__[1] is not object:
        return {**_parameters_a_user_can_pass(cls.__mro__[1]), **own}
    return own


@pytest.mark.parametrize("target", sorted(DATA_ARGUMENT_CHECKS))
def test_source_signatures_of_data_modules_include_what_they_hand_to_their_base(target):
    from hydra.utils import get_object

    expected = _parameters_a_user_can_pass(get_object(target))
    read = source_signature(target)
    assert set(read.parameters) == set(expected)
    assert not read.takes_any
    for name, parameter in expected.items():
        default = parameter.default
        assert read.defaults[name] == (
            NO_DEFAULT if default is inspect.Parameter.empty else default
        )


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["decode.length_penalty=0.6"], "decode.length_penalty"),
        (["module.valid_decode=false"], "callbacks.model_checkpoint.monitor"),
    ],
)
def test_combinations_that_would_fail_mid_training_are_refused_up_front(make_cfg, overrides, key):
    cfg = make_cfg(*[o if o.startswith("module") else f"+{o}" for o in overrides])
    with pytest.raises(ConfigError) as error:
        validate_train_config(cfg)
    assert error.value.key == key


@pytest.mark.parametrize(
    ("overrides", "fused"),
    [
        (["trainer.precision=32-true"], True),  # CPU, fp32
        (["trainer=gpu"], True),  # bf16-mixed, no clipping
        (["trainer=gpu", "trainer.gradient_clip_val=1.0"], False),  # Lightning cannot clip it
        (["trainer.precision=bf16-mixed", "trainer.gradient_clip_val=1.0"], False),  # CPU bf16
        (["trainer.precision=32-true", "trainer.gradient_clip_val=1.0"], True),  # fp32 clips it
        (["experiment=an4/transformer", "trainer=gpu"], False),  # an experiment that clips
    ],
)
def test_adam_is_fused_unless_lightning_must_clip_mixed_precision_gradients(
    make_cfg, overrides, fused
):
    cfg = make_cfg(*overrides, base=["logger=csv"])
    assert cfg.optim.optimizer.fused is fused
    validate_train_config(cfg)  # and the result is accepted


@pytest.mark.parametrize(
    ("vendor", "flags", "precision"),
    [
        ("AuthenticAMD", "fpu sse2 avx512f avx512_bf16 avx512_vnni", "bf16-mixed"),  # Zen 4
        ("GenuineIntel", "fpu sse2 avx512f avx512_bf16 amx_bf16 amx_tile", "bf16-mixed"),  # AMX
        # AVX512-BF16 without AMX on Intel: bf16 trained at 0.55x fp32's speed.
        ("GenuineIntel", "fpu sse2 avx512f avx512_bf16 avx512_fp16", "32-true"),
        ("AuthenticAMD", "fpu sse2 avx2 avx512f", "32-true"),  # no bf16: emulated, far slower
    ],
)
def test_cpu_precision_is_bf16_only_where_the_cpu_trains_faster_with_it(
    monkeypatch, tmp_path, vendor, flags, precision
):
    import attnlab.config
    import attnlab.cpuinfo

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        f"processor\t: 0\nvendor_id\t: {vendor}\nmodel name\t: test\nflags\t\t: {flags}\n\n"
    )
    monkeypatch.setattr(attnlab.cpuinfo, "CPUINFO", cpuinfo)
    assert attnlab.config.cpu_precision() == precision
