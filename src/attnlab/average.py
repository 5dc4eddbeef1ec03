"""``attnlab-average``: average the weights of several checkpoints (Vaswani et al. §6.1: the base
models' results average the last 5 checkpoints, the big ones the last 20).

    attnlab-average RUN_DIR --last 5 -o averaged.ckpt       # the 5 newest step checkpoints
    attnlab-average a.ckpt b.ckpt c.ckpt -o averaged.ckpt

Step checkpoints are kept when training with ``callbacks.step_checkpoint.save_top_k=-1``
(every ``every_n_train_steps`` updates). The result carries the config and tokenizer of the
newest input, so ``attnlab-eval``, ``attnlab-predict`` and ``attnlab.load`` take it like any
other checkpoint; it holds no optimizer state (it is for evaluation, not for resuming).
"""

from __future__ import annotations

import argparse
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from attnlab.checkpoints import CHECKPOINT_KEY, CheckpointError, load_checkpoint
from attnlab.config_errors import ConfigError
from attnlab.data.files import atomic_write_bytes

# What a checkpoint holds besides the weights that still describes the averaged model.
_KEPT_KEYS = (
    CHECKPOINT_KEY,
    "epoch",
    "global_step",
    "pytorch-lightning_version",
    "hyper_parameters",
)


def average_checkpoints(paths: Sequence[str | Path]) -> dict[str, Any]:
    """The element-wise mean of the checkpoints' floating-point weights (accumulated in float64)."""
    if not paths:
        raise ValueError("no checkpoints to average")
    checkpoints = [load_checkpoint(p) for p in paths]
    reference = checkpoints[-1]["state_dict"]
    sums: dict[str, torch.Tensor] = {}
    for path, checkpoint in zip(paths, checkpoints, strict=True):
        weights = checkpoint["state_dict"]
        if weights.keys() != reference.keys():
            missing = sorted(set(reference) ^ set(weights))[:3]
            raise CheckpointError(f"{path}: a different model (keys differ: {missing})")
        for name, tensor in weights.items():
            if tensor.shape != reference[name].shape:
                raise CheckpointError(
                    f"{path}: {name} has shape {tuple(tensor.shape)}, "
                    f"not {tuple(reference[name].shape)}"
                )
            if tensor.is_floating_point():
                sums[name] = sums.get(name, 0) + tensor.double()
    averaged = {
        name: (sums[name] / len(checkpoints)).to(tensor.dtype) if name in sums else tensor
        for name, tensor in reference.items()
    }
    result = {k: checkpoints[-1][k] for k in _KEPT_KEYS if k in checkpoints[-1]}
    result["state_dict"] = averaged
    result["averaged_from"] = [str(Path(p).resolve()) for p in paths]
    return result


_STEP_NAME = re.compile(r"step=?(\d+)\.ckpt")


def step_checkpoints(run_dir: Path) -> list[Path]:
    """A run's step checkpoints (``stepNNNNNN.ckpt``, or ``step=NNNNNN.ckpt`` as older runs
    named them), oldest first."""
    found = (run_dir / "checkpoints").glob("step*.ckpt")
    numbered = [(step, p) for p in found if (step := checkpoint_step(p)) is not None]
    return [path for _, path in sorted(numbered)]


def checkpoint_step(path: Path) -> int | None:
    """The update count in a step checkpoint's name (``step000100.ckpt``: 100), else None."""
    match = _STEP_NAME.fullmatch(path.name)
    return int(match.group(1)) if match else None


def newest_step_checkpoints(run_dir: Path, last: int) -> list[Path]:
    """The ``last`` step checkpoints of a run, oldest first; fewer is an error."""
    found = step_checkpoints(run_dir)
    if len(found) < last:
        raise SystemExit(
            f"attnlab-average: {run_dir} has {len(found)} step checkpoints, {last} wanted "
            "(train with callbacks.step_checkpoint.save_top_k=-1 to keep them)"
        )
    return found[-last:]


def save_average(paths: Sequence[str | Path], output: Path) -> None:
    """Write the average of ``paths`` to ``output`` (atomically)."""
    buffer = io.BytesIO()
    torch.save(average_checkpoints(paths), buffer)
    atomic_write_bytes(output, buffer.getvalue())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="attnlab-average", description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="checkpoints, or one run directory")
    parser.add_argument("--last", type=int, default=5, help="with a run directory: how many")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    paths = args.inputs
    if len(paths) == 1 and paths[0].is_dir():
        paths = newest_step_checkpoints(paths[0], args.last)
    try:
        save_average(paths, args.output)
    except (CheckpointError, ConfigError) as error:
        raise SystemExit(f"attnlab-average: {error}") from None
    print(f"{args.output}: the average of {len(paths)} checkpoints")


if __name__ == "__main__":
    main()
