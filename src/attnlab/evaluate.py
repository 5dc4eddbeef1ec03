"""``attnlab-eval ckpt_path=... data.split=test_2016_flickr [decode=beam]``.

Everything needed to run the model comes from the checkpoint (config, tokenizer, weights);
the command only says which split to score and, optionally, how to decode. It writes the
hypotheses and a metrics.json into its own run directory.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from attnlab.cli import hydra_app
from attnlab.config import MIXED_PRECISIONS, cpu_precision, register_resolvers

log = logging.getLogger("attnlab.evaluate")
register_resolvers()


def precision_as_trained(trained: Any, trainer_cfg: DictConfig) -> str:
    """``trainer.precision=null``: the precision the checkpoint trained in, so its scores are
    reproduced; on a CPU, fp32 instead of a mixed precision this CPU cannot run fast."""
    trained = str(trained or "32-true")
    if trainer_cfg.get("accelerator") == "cpu" and trained in MIXED_PRECISIONS:
        return cpu_precision()
    return trained


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    from hydra.utils import instantiate

    from attnlab.checkpoints import load_checkpoint, restore_model
    from attnlab.config import build, check_decode, check_decode_fits_model
    from attnlab.models.linear import use_onednn
    from attnlab.native import use_native_kernels
    from attnlab.runs import git_dirty, git_sha, write_metrics

    use_onednn(cfg.get("onednn_linear", "auto"))
    use_native_kernels(cfg.get("native_kernels", True))
    started = time.time()
    restored = restore_model(load_checkpoint(cfg.ckpt_path))
    model, tokenizer, train_cfg = restored.model, restored.tokenizer, restored.config
    with open_dict(train_cfg):
        train_cfg.data.split = cfg.data.split
        if cfg.data.get("eval_max_tokens"):
            train_cfg.data.eval_max_tokens = cfg.data.eval_max_tokens
        # Paths recorded on the training machine mean nothing here: this machine's rule
        # (data.task.root / paths.data_dir > $ATTNLAB_DATA_DIR > cache) applies instead.
        if "root" in train_cfg.data.task:
            train_cfg.data.task.root = cfg.paths.get("data_dir")
        train_cfg.data.cache_dir = cfg.paths.get("cache_dir")
        if cfg.get("decode") is not None:
            # decode=beam (a whole decoder, with its strategy) replaces the checkpoint's;
            # +decode.ctc_weight=0.5 alone changes that setting of the checkpoint's decoder.
            given = cfg.decode
            train_cfg.decode = (
                given if "strategy" in given else OmegaConf.merge(train_cfg.decode, given)
            )
    check_decode(train_cfg.decode)
    check_decode_fits_model(train_cfg.decode, train_cfg.model)

    datamodule = build(train_cfg.data, "data")
    datamodule.set_tokenizer(tokenizer)
    module = build(
        train_cfg.module,
        "module",
        model=model,
        criterion=build(train_cfg.criterion, "criterion", ignore_index=tokenizer.pad_id),
        optimizer=None,
        decode=OmegaConf.to_container(train_cfg.decode, resolve=True),
    )
    module.tokenizer = tokenizer
    output_dir = Path(cfg.paths.output_dir)
    module.output_dir = output_dir

    trainer_cfg = cfg.trainer
    if trainer_cfg.get("precision") is None:
        trainer_cfg = OmegaConf.merge(
            trainer_cfg,
            {"precision": precision_as_trained(train_cfg.trainer.get("precision"), trainer_cfg)},
        )
    trainer = instantiate(
        trainer_cfg, logger=False, callbacks=[], max_time=None, enable_checkpointing=False
    )
    trainer.test(module, datamodule=datamodule)
    split = cfg.data.split
    scores = module.scores.get(f"test/{split}", {})
    metrics = {
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "split": split,
        "decode": OmegaConf.to_container(train_cfg.decode, resolve=True),
        "test": {split: scores},
        "wall_time_s": round(time.time() - started, 1),
        "git_sha": git_sha(),
        "git_dirty": git_dirty(),
    }
    if cfg.get("attention"):
        from attnlab.attention_maps import render_attention

        data = datamodule.split_data(split)
        chosen = [i for i in cfg.attention_sentences if 0 <= i < len(data)]
        rendered = render_attention(
            model.eval(),
            tokenizer,
            data,
            chosen,
            output_dir / "attention",
            OmegaConf.to_container(train_cfg.decode, resolve=True),
            kind=cfg.attention_kind,
            layer=cfg.attention_layer,
        )
        metrics["attention_maps"] = [str(r.path) for r in rendered]
    write_metrics(output_dir, metrics)
    log.info("%s: %s", split, {k: v for k, v in scores.items() if not k.endswith("signature")})
    return metrics


@hydra_app("eval")
def main(cfg: DictConfig) -> None:
    from attnlab.checkpoints import CheckpointError
    from attnlab.config_errors import ConfigError

    try:
        evaluate(cfg)
    except ConfigError as error:
        raise SystemExit(f"attnlab: config error: {error}") from None
    except CheckpointError as error:
        raise SystemExit(f"attnlab: {error}") from None


if __name__ == "__main__":
    main()
