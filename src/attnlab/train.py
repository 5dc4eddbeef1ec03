"""``attnlab-train``: compose a config, check it, train, test, and write metrics.json.

Heavy imports (Lightning, the models) happen inside ``train`` so ``--help`` and config errors
answer quickly.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from attnlab.config import register_resolvers

log = logging.getLogger("attnlab.train")
register_resolvers()


def build_loggers(cfg: DictConfig) -> list[Any]:
    from hydra.utils import instantiate

    loggers = []
    for name, node in (cfg.get("logger") or {}).items():
        if node is None:
            continue
        try:
            loggers.append(instantiate(node))
        except Exception as error:  # a broken logger must not take the run down with it
            log.warning("logger %s could not start (%s); continuing without it", name, error)
    return loggers


def resolve_ckpt_path(ckpt_path: str | None) -> str | None:
    if ckpt_path in (None, ""):
        return None
    if not Path(ckpt_path).exists():
        from attnlab.config_errors import ConfigError

        raise ConfigError("ckpt_path", f"checkpoint {ckpt_path} does not exist")
    return ckpt_path


def train(cfg: DictConfig) -> dict[str, Any]:
    from attnlab.config import build, validate_train_config

    validate_train_config(cfg)

    import lightning as L
    from hydra.utils import instantiate

    from attnlab.callbacks import TokenThroughput
    from attnlab.runs import git_sha, resolved_container, save_resolved_config, write_metrics
    from attnlab.runtime import keep_freed_memory

    if cfg.get("keep_freed_memory", True):
        keep_freed_memory()

    started = time.time()
    commit = git_sha()  # the code that trains, not whatever is checked out when it ends
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
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
    loggers = build_loggers(cfg)
    if not loggers:  # Lightning refuses a LearningRateMonitor without a logger to write to
        callbacks = [
            c for c in callbacks if not isinstance(c, L.pytorch.callbacks.LearningRateMonitor)
        ]
    trainer = build(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False)
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

    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"))
    if cfg.get("train", True):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    train_seconds = time.time() - started
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
    if cfg.get("test", True):
        # After training: the best checkpoint; with train=false: the checkpoint given.
        tested = best if cfg.get("train", True) else ckpt_path
        trainer.test(module, datamodule=datamodule, ckpt_path=tested, weights_only=True)

    metrics = {
        "test": {k.split("/", 1)[1]: v for k, v in module.scores.items() if k.startswith("test/")},
        "val": module.scores.get("val"),
        "params": n_params,
        "wall_time_s": round(time.time() - started, 1),
        "train_time_s": round(train_seconds, 1),
        "tokens_per_sec": round(throughput.tokens_per_sec, 1) if throughput else None,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "best_checkpoint": best,
        "git_sha": commit,
        "seed": cfg.seed,
        "train_padding_fraction": (
            datamodule.train_sampler.padding_fraction()
            if datamodule.train_sampler is not None
            else None
        ),
    }
    if trainer.is_global_zero:
        write_metrics(output_dir, metrics)
    for logger in loggers:
        if hasattr(logger, "experiment") and type(logger).__name__ == "WandbLogger":
            import wandb

            wandb.finish()
    return metrics


@hydra.main(version_base="1.3", config_path="pkg://attnlab.conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from attnlab.config_errors import ConfigError

    try:
        metrics = train(cfg)
    except ConfigError as error:
        log.error("config error: %s", error)
        raise SystemExit(f"attnlab: config error: {error}") from None
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
