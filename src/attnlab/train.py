"""``attnlab-train``: compose a config, check it, train, test, and write metrics.json.

Heavy imports (Lightning, the models) happen inside ``train`` so ``--help`` and config errors
answer quickly.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from attnlab.cli import hydra_app
from attnlab.config import register_resolvers

log = logging.getLogger("attnlab.train")
register_resolvers()
# When this process loaded attnlab's code; Hydra reads conf/ again for every job of a multirun.
CODE_LOADED_AT = time.time()


class SourceChanged(RuntimeError):
    """attnlab's code or configs changed on disk after this process loaded them."""


def changed_since(roots: list[Path], moment: float) -> list[str]:
    """The .py and .yaml files under ``roots`` modified after ``moment``."""
    return sorted(
        str(path)
        for root in roots
        for path in root.rglob("*")
        if path.suffix in (".py", ".yaml") and path.stat().st_mtime > moment
    )


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # not under Hydra (the Python API, tests)
        return False


def check_source_unchanged() -> None:
    """A multirun composes each job from conf/ when the job starts but runs the code it loaded
    at the start: after an edit (an editable install), a job would mix new configs with old
    code, and record a commit it is not running. Refuse it, saying what changed."""
    if not in_multirun():
        return
    import importlib.util

    conf = importlib.util.find_spec("attnlab.conf")
    roots = [Path(__file__).parent, *map(Path, conf.submodule_search_locations or [])]
    changed = changed_since(roots, CODE_LOADED_AT)
    if changed:
        shown = ", ".join(changed[:3]) + (
            f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        )
        raise SourceChanged(
            f"attnlab's files changed after this sweep started ({shown}); its later jobs would "
            "mix the new configs with the code it loaded. Run the same command again: finished "
            "jobs are skipped and the rest run the new code"
        )


def build_loggers(cfg: DictConfig, output_dir: Path) -> list[Any]:
    from hydra.utils import instantiate

    loggers = []
    for name, node in (cfg.get("logger") or {}).items():
        if node is None:
            continue
        extra = {}
        if str(node.get("_target_", "")).endswith("WandbLogger"):
            # One W&B run per run directory, also across restarts of the same run.
            extra = {"id": wandb_run_id(output_dir), "resume": "allow"}
        try:
            logger = instantiate(node, **extra)
            if extra:
                _ = logger.experiment  # start W&B now: a bad login fails here, not mid-run
            loggers.append(logger)
        except Exception as error:  # a broken logger must not take the run down with it
            log.warning("logger %s could not start (%s); continuing without it", name, error)
    return loggers


def wandb_run_id(output_dir: Path) -> str:
    import secrets

    from attnlab.data.files import atomic_write_bytes

    path = output_dir / "wandb_run_id"
    if not path.exists():
        atomic_write_bytes(path, secrets.token_hex(4).encode())
    return path.read_text().strip()


def place_in_parallel_sweep(cfg: DictConfig) -> Any:
    """For a job of ``hydra/launcher=parallel``: claim a GPU (or a share of the cores)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        hydra_cfg = HydraConfig.get()
    except ValueError:  # not started by Hydra (tests, notebooks)
        return None
    launcher = hydra_cfg.launcher
    if "Joblib" not in str(launcher.get("_target_", "")):
        return None
    import torch

    from attnlab.devices import place_parallel_job

    wants_gpu = str(cfg.trainer.get("accelerator")) in ("gpu", "cuda", "auto")
    gpus = torch.cuda.device_count() if wants_gpu and torch.cuda.is_available() else 0
    placement = place_parallel_job(Path(hydra_cfg.sweep.dir), int(launcher.n_jobs), gpus)
    if placement.device == "cpu":
        torch.set_num_threads(placement.threads)
    else:
        with open_dict(cfg):
            cfg.trainer.devices = [placement.slot]
    log.info("parallel sweep job: %s", placement.describe())
    return placement


def prepare_ddp_in_multirun(cfg: DictConfig, output_dir: Path) -> None:
    """Lightning starts DDP ranks 1..N-1 by re-running this command. Inside a sweep the command
    is the whole multirun, which would make every rank run every job (and log its own W&B run):
    give the ranks this job's overrides and directory instead."""
    import sys

    from hydra.core.hydra_config import HydraConfig
    from omegaconf import read_write

    strategy = str(cfg.trainer.get("strategy", ""))
    if "ddp" not in strategy or "spawn" in strategy or not in_multirun():
        return
    hydra_cfg = HydraConfig.get()
    sys.argv = [sys.argv[0], *hydra_cfg.overrides.task]
    with read_write(hydra_cfg):
        hydra_cfg.run.dir = str(output_dir)


def resolve_ckpt_path(ckpt_path: str | None) -> str | None:
    if ckpt_path in (None, ""):
        return None
    if not Path(ckpt_path).exists():
        from attnlab.config_errors import ConfigError

        raise ConfigError("ckpt_path", f"checkpoint {ckpt_path} does not exist")
    return ckpt_path


def average_newest(
    trainer: Any, output_dir: Path, last: int, fallback: str | None
) -> tuple[str | None, list[str] | None]:
    """The checkpoint to test under ``average_last``: the mean of the newest ``last`` step
    checkpoints (rank 0 writes it), or ``fallback`` when the run wrote none."""
    from attnlab.average import checkpoint_step, save_average, step_checkpoints

    inputs = step_checkpoints(output_dir)[-last:]
    if not inputs:
        log.warning("average_last=%d: no step checkpoints to average; testing %s", last, fallback)
        return fallback, None
    first = checkpoint_step(inputs[0])
    if first is not None and first < trainer.global_step / 2:
        # A short run: the newest checkpoints reach back into its first half, where the weights
        # were far from the end's (3 epochs of Multi30k: steps 100-500 of 585 tested at 7.5
        # BLEU, the best checkpoint at 20.6).
        log.warning(
            "average_last=%d averages steps %d-%s of %d, most of this run: its test score is "
            "that average's; average_last=0 tests the best checkpoint (%s)",
            last,
            first,
            checkpoint_step(inputs[-1]),
            trainer.global_step,
            fallback,
        )
    averaged = output_dir / "checkpoints" / "averaged.ckpt"
    if trainer.is_global_zero:
        save_average(inputs, averaged)
        log.info("testing the average of %d step checkpoints: %s", len(inputs), averaged)
    trainer.strategy.barrier()
    return str(averaged), [str(p) for p in inputs]


def train(cfg: DictConfig) -> dict[str, Any]:
    from attnlab.config import build, validate_train_config

    check_source_unchanged()
    validate_train_config(cfg)

    import lightning as L
    from hydra.utils import instantiate

    from attnlab.callbacks import TokenThroughput
    from attnlab.checkpoints import atomic_checkpoint_io
    from attnlab.flops import weights_per_token
    from attnlab.models.linear import use_onednn
    from attnlab.native import use_native_kernels
    from attnlab.runs import (
        git_dirty,
        git_sha,
        resolved_container,
        save_resolved_config,
        scrub_run_directory,
        write_metrics,
    )
    from attnlab.runtime import keep_freed_memory

    if cfg.get("keep_freed_memory", True):
        keep_freed_memory()
    use_onednn(cfg.get("onednn_linear", "auto"))
    use_native_kernels(cfg.get("native_kernels", True))
    placement = place_in_parallel_sweep(cfg)

    started = time.time()
    environment = dict(os.environ)
    commit, dirty = git_sha(), git_dirty()  # the code that trains, not what is there at the end
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    scrub_run_directory(output_dir)
    prepare_ddp_in_multirun(cfg, output_dir)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"))
    if cfg.get("resume", True) and cfg.get("train", True) and ckpt_path is None:
        # The same command again (a rerun sweep, a requeued job, a restart after a crash) finds
        # its own run directory: a finished run is not repeated, an unfinished one continues.
        finished = output_dir / "metrics.json"
        if finished.exists():
            log.info(
                "%s already finished; not training again (resume=false to retrain)", output_dir
            )
            return json.loads(finished.read_text())
        last = output_dir / "checkpoints" / "last.ckpt"
        if last.exists():
            from attnlab.checkpoints import check_resumable

            check_resumable(last, resolved_container(cfg))
            log.info("resuming from %s", last)
            ckpt_path = str(last)
    L.seed_everything(cfg.seed, workers=True)

    datamodule = build(cfg.data, "data")
    tokenizer = datamodule.prepare_tokenizer()
    model = build(
        cfg.model,
        "model",
        src_vocab_size=tokenizer.vocab_size,
        tgt_vocab_size=tokenizer.vocab_size,
        pad_id=tokenizer.pad_id,
    )
    if hasattr(datamodule, "feature_statistics"):
        from attnlab.models.frontends import set_feature_statistics

        # Global CMVN from the training features; a resumed run restores the same values.
        set_feature_statistics(model, *datamodule.feature_statistics())
    module = build(
        cfg.module,
        "module",
        model=model,
        criterion=build(cfg.criterion, "criterion", ignore_index=tokenizer.pad_id),
        optimizer=build(cfg.optim.optimizer, "optim.optimizer"),
        scheduler=build(cfg.optim.scheduler, "optim.scheduler")
        if cfg.optim.get("scheduler")
        else None,
        decode=OmegaConf.to_container(cfg.decode, resolve=True),
    )
    module.tokenizer = tokenizer
    module.run_config = resolved_container(cfg)
    module.output_dir = output_dir

    callbacks = [instantiate(node) for node in (cfg.get("callbacks") or {}).values() if node]
    throughput = next((c for c in callbacks if isinstance(c, TokenThroughput)), None)
    loggers = build_loggers(cfg, output_dir)
    if not loggers:  # Lightning refuses a LearningRateMonitor without a logger to write to
        callbacks = [
            c for c in callbacks if not isinstance(c, L.pytorch.callbacks.LearningRateMonitor)
        ]
    trainer = build(
        cfg.trainer,
        "trainer",
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[atomic_checkpoint_io()],
    )
    n_params = sum(p.numel() for p in model.parameters())
    if trainer.is_global_zero:
        save_resolved_config(cfg, output_dir)
        log.info(
            "model: %s parameters; vocabulary %d; run directory %s",
            f"{n_params:,}",
            tokenizer.vocab_size,
            output_dir,
        )
    for logger in loggers:
        logger.log_hyperparams({**module.run_config, "n_params": n_params})

    if cfg.get("train", True):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    train_seconds = time.time() - started
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
    # After training: the best checkpoint, or the average of the newest step checkpoints;
    # with train=false: the checkpoint given.
    tested = best if cfg.get("train", True) else ckpt_path
    averaged_from = None
    if cfg.get("train", True) and cfg.get("average_last", 0):
        tested, averaged_from = average_newest(trainer, output_dir, cfg.average_last, best)
    if cfg.get("test", True):
        trainer.test(module, datamodule=datamodule, ckpt_path=tested, weights_only=True)

    metrics = {
        "test": {k.split("/", 1)[1]: v for k, v in module.scores.items() if k.startswith("test/")},
        "val": module.scores.get("val"),
        "params": n_params,
        "weights_per_token": list(weights_per_token(model)),  # (source, target): for FLOPs
        "wall_time_s": round(time.time() - started, 1),
        "train_time_s": round(train_seconds, 1),
        "tokens_per_sec": round(throughput.tokens_per_sec, 1) if throughput else None,
        "epochs": trainer.current_epoch,
        "world_size": trainer.world_size,
        "global_step": trainer.global_step,
        "best_checkpoint": best,
        "tested_checkpoint": tested,
        "averaged_from": averaged_from,
        "truncated_examples": datamodule.truncated,  # by split: cut to the position limits
        "skipped_batches": module.skipped_batches,  # non-finite losses (module.nonfinite_loss=skip)
        "git_sha": commit,
        "git_dirty": dirty,
        "started_at": started,
        "finished_at": time.time(),
        "placement": placement.describe() if placement else None,
        "seed": cfg.seed,
        "train_padding_fraction": (
            datamodule.train_sampler.padding_fraction()
            if datamodule.train_sampler is not None
            else None
        ),
    }
    if trainer.is_global_zero:
        write_metrics(output_dir, metrics)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        # The next job of a sweep (same process) must start its own group with its own ranks,
        # and launch its own rank processes: Lightning leaves LOCAL_RANK & co. in the
        # environment, which would make it wait for ranks that nobody starts.
        dist.destroy_process_group()
        for name in set(os.environ) - set(environment):
            del os.environ[name]
        os.environ.update(environment)
    for logger in loggers:
        if hasattr(logger, "experiment") and type(logger).__name__ == "WandbLogger":
            import wandb

            from attnlab.runs import WANDB_METRICS_KEY, metrics_json

            if trainer.is_global_zero:
                # What metrics.json says, so `attnlab-report wandb:<project>` needs no files.
                logger.experiment.summary[WANDB_METRICS_KEY] = json.loads(metrics_json(metrics))
            wandb.finish()
    return metrics


@hydra_app("train")
def main(cfg: DictConfig) -> float | None:
    import sys

    from attnlab.config_errors import ConfigError
    from attnlab.runs import RunPreempted, redact_override

    # Loggers (W&B records the command line) must not see a secret given as an override.
    sys.argv = [redact_override(arg) for arg in sys.argv]
    try:
        metrics = train(cfg)
    except ConfigError as error:
        log.error("config error: %s", error)
        raise SystemExit(f"attnlab: config error: {error}") from None
    except SourceChanged as error:
        log.error("%s", error)
        raise SystemExit(f"attnlab: {error}") from None
    except RunPreempted as stop:
        log.warning(
            "stopped by signal %d; saved %s: run the same command to resume",
            stop.signum,
            stop.checkpoint,
        )
        raise SystemExit(128 + stop.signum) from None
    # A sweeper (Optuna, W&B) optimises the value returned here.
    metric = cfg.get("optimized_metric")
    return _lookup(metrics, metric) if metric else None


def _lookup(metrics: dict[str, Any], dotted: str) -> float | None:
    node: Any = metrics
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


if __name__ == "__main__":
    main()
