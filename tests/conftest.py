"""Compose the real train.yaml once per test, shrunk to seconds on a CPU (as the
lightning-hydra-template does), with every output under the test's tmp_path."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers, one per core here: one torch thread each, since
    # oversubscribed OpenMP threads make the tiny test models several times slower.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ATTNLAB_DATA_DIR", REPO.parent / "shared" / "data"))
HAS_MULTI30K = (SHARED_DATA / "multi30k_en_de" / "train.de.gz").exists()
needs_multi30k = pytest.mark.skipif(
    not HAS_MULTI30K, reason=f"Multi30k not found under {SHARED_DATA}"
)


def compose_config(overrides: list[str], tmp_path: Path, config_name: str = "train") -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="attnlab.conf", version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
        cfg.paths.cache_dir = str(tmp_path.parent / "cache")
        if HAS_MULTI30K:
            cfg.paths.data_dir = str(SHARED_DATA)
        del cfg.hydra
    return cfg


TOY = ["experiment=toy", "logger=csv", "trainer.max_time=null", "trainer.enable_progress_bar=false"]
# Learning tests stop as soon as the validation score says the task is learnt (Lightning's
# EarlyStopping threshold); the test split then has to agree, scored with that checkpoint.
STOP_WHEN_LEARNT = (
    "average_last=0",
    "callbacks.early_stopping=null",  # replace whatever the experiment set, whole
    "callbacks.early_stopping={_target_:lightning.pytorch.callbacks.EarlyStopping,"
    "monitor:'val/score',mode:max,patience:1000,stopping_threshold:99.5}",
)


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """``make_cfg(*overrides, base=TOY)``: a composed config writing into ``tmp_path``."""

    def _make(*overrides: str, base: list[str] = TOY, output_dir: Path | None = None) -> DictConfig:
        return compose_config([*base, *overrides], output_dir or tmp_path)

    return _make


def decode_step_by_step(
    model: torch.nn.Module, src: torch.Tensor, pad_mask: torch.Tensor, tgt_in: torch.Tensor
) -> torch.Tensor:
    """Teacher-forced logits ``[B, T, V]`` by ``decode_step``, one step at a time."""
    enc = model.encode(src, pad_mask)
    state = model.init_decoder_state(enc)
    steps = []
    for t in range(tgt_in.size(1)):
        logits, state = model.decode_step(tgt_in[:, t], enc, state)
        steps.append(logits)
    return torch.stack(steps, dim=1)
