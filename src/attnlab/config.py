"""Config checks that run before any data is read or any step is trained.

Every node with a ``_target_`` is checked against the signature of what it builds: an unknown key
is reported with the closest known name, a value of the wrong type is reported with the type it
needs. Then the model is built on the ``meta`` device (no memory, no time) and the data task and
criterion are built, so their own range checks (heads dividing d_model, dropout in [0, 1),
known splits...) run too. Every error names the full config key.
"""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from attnlab.config_errors import ConfigError, check_onednn_linear, require
from attnlab.cpuinfo import cpu_fields
from attnlab.optim import noam_peak_lr
from attnlab.signatures import (
    NO_DEFAULT,
    accepts,
    imports_heavy_packages,
    source_signature,
    type_name,
)

_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


def scaled(value: int, numerator: int, denominator: int = 1) -> int:
    """``${scaled:512,1,2}`` = 256: a size times a ratio, which must give a whole number
    (the Table 3 rows are written as ratios of the base so one row serves every scale)."""
    result, remainder = divmod(value * numerator, denominator)
    if remainder:
        raise ValueError(f"{value} * {numerator} / {denominator} is not a whole number")
    return result


MIXED_PRECISIONS = ("16", "16-mixed", "bf16", "bf16-mixed")


def fusable(precision: Any, gradient_clip_val: Any) -> bool:
    """``${fusable:${trainer.precision},${trainer.gradient_clip_val}}``: whether the optimizer
    may be fused. Lightning's mixed-precision plugin (fp16 and bf16 autocast) refuses to clip
    the gradients of an optimizer that unscales them itself, as fused ones do."""
    return not (str(precision) in MIXED_PRECISIONS and gradient_clip_val)


def cpu_trains_faster_in_bf16() -> bool:
    """Whether bf16 autocast trains faster than fp32 on this CPU, judged from /proc/cpuinfo.

    On 2 threads, ``transformer_small``: AMD Zen 4 with AVX512-BF16 trained 1.95x as fast in
    bf16 as in fp32, a Zen 5 1.56x (fp32 there through oneDNN's AVX-512 kernels, weight
    gradients included), and an Intel Xeon with AMX ran DialogSum at 8,052 tokens/s in bf16.
    An Intel Xeon that shows AVX512-BF16 but not AMX (its hypervisor hides it; Cooper Lake has
    none) ran the same DialogSum training at 3,325 tokens/s in bf16 and 6,018 in fp32, and CPUs
    with neither emulate bf16 many times slower. Read without importing torch, so a config
    resolves at once.
    """
    fields = cpu_fields()
    if not fields:
        import torch

        return torch.cpu._is_amx_tile_supported()
    flags = set(fields.get("flags", "").split())
    vendor = fields.get("vendor_id", "")
    if "amx_bf16" in flags:
        return True
    return "avx512_bf16" in flags and vendor == "AuthenticAMD"


def cpu_precision() -> str:
    """``${cpu_precision:}``: bf16 autocast where this CPU trains faster with it (see
    ``cpu_trains_faster_in_bf16``), else fp32."""
    return "bf16-mixed" if cpu_trains_faster_in_bf16() else "32-true"


def register_resolvers() -> None:
    resolvers = (
        ("noam_peak_lr", noam_peak_lr),
        ("scaled", scaled),
        ("fusable", fusable),
        ("cpu_precision", cpu_precision),
    )
    for name, function in resolvers:
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


register_resolvers()


def _signature_of(target: Callable) -> inspect.Signature:
    return inspect.signature(target.__init__ if inspect.isclass(target) else target)


def _type_hints(target: Callable) -> dict[str, Any]:
    try:
        return typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:  # unresolvable annotations: skip type checks rather than guess
        return {}


def check_node(node: DictConfig, path: str) -> None:
    """Check one ``_target_`` node's keys and value types against its target's signature."""
    try:
        target = get_object(node._target_)
    except Exception as error:
        raise ConfigError(f"{path}._target_", f"cannot import {node._target_!r}: {error}") from None
    signature = _signature_of(target)
    params = [n for n in signature.parameters if n != "self"]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    _check_keys(node, path, params, takes_any, _type_hints(target))


def check_node_from_source(node: DictConfig, path: str) -> None:
    """:func:`check_node` for attnlab targets, reading their source instead of importing them
    (no torch); other targets are left to :func:`check_node`."""
    signature = source_signature(str(node._target_))
    if signature is not None:
        _check_keys(node, path, signature.parameters, signature.takes_any, signature.hints)


def _check_keys(
    node: DictConfig, path: str, params: Sequence[str], takes_any: bool, hints: dict[str, Any]
) -> None:
    for key in node:
        if key in _HYDRA_KEYS:
            continue
        if key not in params:
            if takes_any:
                continue
            close = difflib.get_close_matches(str(key), list(params), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {sorted(params)}"
            raise ConfigError(f"{path}.{key}", f"unknown key for {node._target_}{hint}")
        value = node._get_node(key)
        if OmegaConf.is_config(value) or value._is_interpolation():
            continue
        raw = value._value()
        if key in hints and not accepts(hints[key], raw):
            raise ConfigError(f"{path}.{key}", f"expected {type_name(hints[key])}, got {raw!r}")


def _walk_targets(
    node: Any, path: str, check: Callable[[DictConfig, str], None] = check_node
) -> None:
    if isinstance(node, DictConfig):
        if "_target_" in node:
            check(node, path)
        for key in node:
            child = node._get_node(key)
            if OmegaConf.is_config(child):
                _walk_targets(child, f"{path}.{key}" if path else str(key), check)
    elif isinstance(node, ListConfig):
        for index, child in enumerate(node):
            _walk_targets(child, f"{path}[{index}]", check)


def check_model_arguments(model: DictConfig) -> None:
    """The model's own argument checks (``attnlab.models.arguments``), run without torch on the
    configured values and the defaults read from the model's source."""
    from attnlab.models.arguments import ARGUMENT_CHECKS

    _check_arguments(model, "model", ARGUMENT_CHECKS)


def check_data_arguments(data: DictConfig) -> None:
    """The data module's own argument checks (``attnlab.data.arguments``: splits, batch sizes,
    tokenizer) without Lightning, when its task can be built without torch."""
    from attnlab.data.arguments import ARGUMENT_CHECKS

    task_node = data.get("task")
    if not isinstance(task_node, DictConfig) or "_target_" not in task_node:
        return
    task_module = str(task_node._target_).rpartition(".")[0]
    if not task_module.startswith("attnlab.") or imports_heavy_packages(task_module):
        return  # a task module that imports torch: checked when the data module is built
    _check_arguments(data, "data", ARGUMENT_CHECKS, task=build(task_node, "data.task"))


def _check_arguments(
    node: DictConfig, path: str, checks: dict[str, Callable[..., Any]], **given: Any
) -> None:
    target = str(node.get("_target_"))
    check, signature = checks.get(target), source_signature(target)
    if check is None or signature is None:
        return
    configured = {k: v for k, v in node.items() if k not in _HYDRA_KEYS and k not in given}
    values = {
        **signature.defaults,
        **OmegaConf.to_container(OmegaConf.create(configured), resolve=True),
        **given,
    }
    parameters = inspect.signature(check).parameters
    named = [n for n, p in parameters.items() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    arguments = {name: values.get(name, NO_DEFAULT) for name in named}
    if len(named) < len(parameters):  # a check taking **kwargs gets the component's other values
        arguments |= {
            k: v for k, v in values.items() if k in signature.parameters and k not in named
        }
    if any(value is NO_DEFAULT for value in arguments.values()):
        return  # a default that is not a literal: the component checks it when it is built
    try:
        check(**arguments)
    except ConfigError as error:
        raise error.under(path) from None
    except TypeError:  # e.g. a null size: the component's construction names it
        return


def build(node: DictConfig, path: str, **kwargs: Any) -> Any:
    """``instantiate`` that reports component errors under their full config key."""
    try:
        return instantiate(node, **kwargs)
    except ConfigError as error:
        raise error.under(path) from None
    except Exception as error:  # Hydra wraps constructor errors in InstantiationException
        cause = error.__cause__ or error.__context__
        if isinstance(cause, ConfigError):
            raise cause.under(path) from None
        raise


DECODE_STRATEGIES = ("greedy", "beam")


def check_decode_fits_model(decode: Mapping[str, Any], model: Mapping[str, Any]) -> None:
    """Decoding settings the model cannot serve (training, eval and predict share this)."""
    require(
        decode.get("ctc_weight", 0.0) == 0.0 or model.get("ctc_head", False),
        "decode.ctc_weight",
        "joint CTC scoring needs a CTC head on the model (model.ctc_head=true)",
    )


def check_decode(decode: DictConfig, path: str = "decode") -> None:
    require(
        decode.get("strategy") in DECODE_STRATEGIES,
        f"{path}.strategy",
        f"must be one of {list(DECODE_STRATEGIES)}, got {decode.get('strategy')!r}",
    )
    checks = {
        "beam_size": lambda v: isinstance(v, int) and v >= 1,
        "nbest": lambda v: isinstance(v, int) and v >= 1,
        "length_penalty": lambda v: isinstance(v, int | float) and v >= 0,
        "max_len_a": lambda v: isinstance(v, int | float) and v >= 0,
        "max_len_b": lambda v: isinstance(v, int) and v >= 0,
        "min_len": lambda v: isinstance(v, int) and v >= 0,
        "no_repeat_ngram_size": lambda v: isinstance(v, int) and v >= 0,
        "ctc_weight": lambda v: isinstance(v, int | float) and 0 <= v <= 1,
    }
    for key in decode:
        if key == "strategy":
            continue
        require(
            key in checks,
            f"{path}.{key}",
            f"unknown decoding option; known: {sorted(['strategy', *checks])}",
        )
        require(checks[key](decode[key]), f"{path}.{key}", f"invalid value {decode[key]!r}")
    if decode.get("strategy") == "greedy":
        for key in ("beam_size", "length_penalty", "nbest", "no_repeat_ngram_size"):
            require(
                key not in decode, f"{path}.{key}", "only applies to strategy=beam (decode=beam)"
            )
    require(
        decode.get("nbest", 1) <= decode.get("beam_size", 1),
        f"{path}.nbest",
        "nbest cannot exceed beam_size",
    )


def check_trainer(trainer: DictConfig) -> None:
    devices = trainer.get("devices", "auto")
    require(
        devices == "auto"
        or devices == -1
        or (isinstance(devices, int) and devices >= 1)
        or isinstance(devices, str | ListConfig),
        "trainer.devices",
        f"must be 'auto', -1 or a positive count, got {devices!r}",
    )
    require(
        trainer.get("accumulate_grad_batches", 1) >= 1,
        "trainer.accumulate_grad_batches",
        "must be >= 1",
    )
    clip = trainer.get("gradient_clip_val")
    require(clip is None or clip >= 0, "trainer.gradient_clip_val", f"must be >= 0, got {clip}")


def check_optimizer(optim: DictConfig) -> None:
    """Build the optimizer and schedule on one dummy parameter: their own argument checks
    (a negative lr, a zero warm-up) fail here, not when training starts."""
    import torch

    try:
        optimizer = build(optim.optimizer, "optim.optimizer")([torch.nn.Parameter(torch.zeros(1))])
    except ValueError as error:  # torch.optim's own checks, e.g. "Invalid learning rate"
        raise ConfigError("optim.optimizer", str(error)) from None
    if optim.get("scheduler"):
        try:
            build(optim.scheduler, "optim.scheduler")(optimizer)
        except ConfigError as error:
            raise error.under("optim.scheduler") from None
        except ValueError as error:
            raise ConfigError("optim.scheduler", str(error)) from None


def validate_train_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` naming the key for any mistake found without touching data."""
    try:
        OmegaConf.resolve(OmegaConf.create(OmegaConf.to_container(cfg, resolve=False)))
    except Exception as error:  # e.g. a missing mandatory value or a broken interpolation
        raise ConfigError(
            getattr(error, "full_key", "config") or "config", str(error).split("\n")[0]
        ) from None
    # First what needs neither torch (1.5 s to import here) nor Lightning (seconds more): the
    # keys of attnlab's components, read from their source, the model's sizes, and the trainer,
    # decoding and averaging settings. The commonest mistakes are named without waiting.
    _walk_targets(cfg, "", check=check_node_from_source)
    check_model_arguments(cfg.model)
    check_data_arguments(cfg.data)
    check_decode(cfg.decode)
    check_trainer(cfg.trainer)
    require(
        not (
            cfg.optim.optimizer.get("fused")
            and not fusable(cfg.trainer.get("precision"), cfg.trainer.get("gradient_clip_val"))
        ),
        "optim.optimizer.fused",
        "Lightning cannot clip (trainer.gradient_clip_val) the gradients of a fused optimizer "
        "under mixed precision: set optim.optimizer.fused=false, or clip nothing",
    )
    check_onednn_linear(cfg.get("onednn_linear", "auto"))
    average_last = cfg.get("average_last", 0)
    require(
        isinstance(average_last, int) and not isinstance(average_last, bool) and average_last >= 0,
        "average_last",
        f"must be a whole number of step checkpoints >= 0 (0: test the best), got {average_last!r}",
    )
    require(
        cfg.criterion.get("ctc_weight", 0.0) == 0.0 or cfg.model.get("ctc_head", False),
        "criterion.ctc_weight",
        "a CTC loss needs a CTC head on the model (model.ctc_head=true)",
    )
    check_decode_fits_model(cfg.decode, cfg.model)
    # Then model, loss and optimiser built for real: they need torch but not Lightning.
    early = ("model", "criterion", "optim")
    for key in early:
        _walk_targets(cfg.get(key), key)
    import torch  # here, not at the top: `attnlab-train --help` needs no torch

    with torch.device("meta"):  # construct without allocating: only the argument checks run
        build(cfg.model, "model", src_vocab_size=8, tgt_vocab_size=8)
    build(cfg.criterion, "criterion")
    check_optimizer(cfg.optim)
    for key in cfg:
        if key not in early:
            _walk_targets(cfg._get_node(key), str(key))
    task = build(cfg.data.task, "data.task")
    data_kwargs = {k: v for k, v in cfg.data.items() if k not in _HYDRA_KEYS and k != "task"}
    data_target = get_object(cfg.data._target_)
    try:
        data_target(
            task=task, **OmegaConf.to_container(OmegaConf.create(data_kwargs), resolve=True)
        )
    except ConfigError as error:
        raise error.under("data") from None
    speech = getattr(data_target, "gives_features", False)
    input_dim = cfg.model.get("input_dim")
    if speech:
        require(
            input_dim == cfg.data.get("feature_dim"),
            "model.input_dim",
            f"is {input_dim} but the data gives {cfg.data.get('feature_dim')}-dimensional "
            "feature frames (data.feature_dim)",
        )
    else:
        require(
            input_dim is None,
            "model.input_dim",
            f"is {input_dim} but {cfg.data.get('_target_')} gives token ids (use null)",
        )
    # A speech source limit counts input frames; the conv2d front-end leaves a quarter of them.
    source_positions = cfg.data.get("max_source_positions", 0) // (4 if speech else 1)
    longest = max(source_positions, cfg.data.get("max_target_positions", 0))
    model_positions = cfg.model.get("max_positions")
    require(
        model_positions is None or model_positions >= longest,
        "model.max_positions",
        f"{model_positions} is shorter than the data's position limits ({longest}: "
        "data.max_source_positions / data.max_target_positions)",
    )
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is not None:  # callbacks check their own settings when built (no side effects)
            build(node, f"callbacks.{name}")
    checkpoint = (cfg.get("callbacks") or {}).get("model_checkpoint")
    decoded = ("val/score", "val/bleu", "val/chrf", "val/exact_match")
    decoded += tuple(f"val/{r}" for r in ("rouge1", "rouge2", "rougeL", "rougeLsum"))
    if checkpoint and not cfg.module.get("valid_decode", True):
        require(
            checkpoint.get("monitor") not in decoded,
            "callbacks.model_checkpoint.monitor",
            f"{checkpoint.get('monitor')} needs module.valid_decode=true; monitor val/loss instead",
        )
