"""Nothing is lost: a killed run resumes where it stopped and ends exactly where it would have."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from attnlab.checkpoints import atomic_checkpoint_io

TOY_RUN = [
    "experiment=toy",
    "trainer.max_epochs=3",
    "trainer.max_time=null",
    "trainer.enable_progress_bar=false",
    "model.dropout=0.1",  # dropout draws random numbers: the resumed run must draw the same ones
    "callbacks.step_checkpoint.every_n_train_steps=10",
    "callbacks.attention_maps=null",
    "logger=csv",
]


def command(run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "attnlab.train",
        *TOY_RUN,
        *extra,
        f"hydra.run.dir={run_dir}",
        f"paths.cache_dir={run_dir.parent / 'cache'}",
    ]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def checkpoint_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


def test_a_killed_run_resumes_and_ends_bit_identical_to_an_uninterrupted_one(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run(command(whole))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    total_steps = json.loads((whole / "metrics.json").read_text())["global_step"]
    saved_at = checkpoint_step(last)
    steps_per_epoch = total_steps // 3
    assert saved_at % steps_per_epoch != 0, "the checkpoint should be mid-epoch"

    resumed = run(command(killed))  # the same command again
    assert f"resuming from {last}" in resumed.stdout + resumed.stderr

    a = json.loads((whole / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert b["global_step"] == a["global_step"] and b["epochs"] == a["epochs"]
    assert b["test"] == a["test"]  # loss, perplexity, BLEU, exact match: all equal
    assert b["val"] == a["val"]
    for name in ("test.hyp.txt",):
        assert (killed / "hypotheses" / name).read_text() == (
            whole / "hypotheses" / name
        ).read_text()
    weights_a = torch.load(whole / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    weights_b = torch.load(last, weights_only=True)["state_dict"]
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def test_rerunning_a_finished_run_changes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    run(command(run_dir, "trainer.max_epochs=1"))
    before = (run_dir / "metrics.json").read_bytes()
    stamp = (run_dir / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    again = run(command(run_dir, "trainer.max_epochs=1"))
    assert "already finished" in again.stdout + again.stderr
    assert (run_dir / "metrics.json").read_bytes() == before
    assert (run_dir / "checkpoints" / "last.ckpt").stat().st_mtime_ns == stamp


def test_rerunning_an_interrupted_sweep_skips_finished_jobs_and_resumes_the_rest(tmp_path):
    sweep = [
        sys.executable,
        "-m",
        "attnlab.train",
        "-m",
        *TOY_RUN,
        "trainer.max_epochs=2",
        "seed=1,2",
        "run_name=study",
        f"paths.log_dir={tmp_path}",
        f"paths.cache_dir={tmp_path / 'cache'}",
    ]
    run(sweep)
    jobs = tmp_path / "train" / "multiruns" / "study"
    finished, interrupted = jobs / "0", jobs / "1"
    kept = (finished / "metrics.json").read_bytes()
    # Job 1 "was killed" after its last checkpoint: no metrics.json, a last.ckpt from epoch 1.
    complete = json.loads((interrupted / "metrics.json").read_text())
    (interrupted / "metrics.json").unlink()

    again = run(sweep)
    assert (finished / "metrics.json").read_bytes() == kept
    logs = again.stdout + again.stderr
    assert "already finished" in logs and "resuming from" in logs
    redone = json.loads((interrupted / "metrics.json").read_text())
    assert redone["global_step"] == complete["global_step"]
    assert redone["test"] == complete["test"]


def test_a_checkpoint_write_that_dies_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    io = atomic_checkpoint_io()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)

    def dies_half_way(obj, target, *args, **kwargs):
        Path(target).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_sigterm_saves_a_checkpoint_and_the_same_command_resumes(tmp_path):
    run_dir = tmp_path / "run"
    cmd = command(
        run_dir, "trainer.max_epochs=4", "callbacks.step_checkpoint.every_n_train_steps=100000"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seen = ""
    while "model:" not in seen:  # the log line just before training starts
        line = process.stdout.readline()
        assert line, "the run ended before training started"
        seen += line
    time.sleep(2.0)
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGTERM, rest[-2000:]
    assert "run the same command to resume" in rest
    last = run_dir / "checkpoints" / "last.ckpt"
    assert checkpoint_step(last) > 0 and not (run_dir / "metrics.json").exists()

    resumed = run(cmd)
    assert f"resuming from {last}" in resumed.stdout + resumed.stderr
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 4


@pytest.mark.parametrize(("saved", "configured"), [(None, True), (True, False)])
def test_a_resumed_optimizer_takes_the_configured_fused_setting(saved, configured):
    """torch restores saved param groups whole: a checkpoint written unfused (all of them before
    fused Adam was the default) must not leave the resumed optimizer unfused, nor the reverse."""
    import functools

    from attnlab.module import Seq2SeqModule

    model = torch.nn.Linear(3, 3)
    module = Seq2SeqModule(
        model=model,
        criterion=torch.nn.Identity(),
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3, fused=configured),
    )
    saved_optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=saved)
    model(torch.ones(1, 3)).sum().backward()
    saved_optimizer.step()
    checkpoint = {"optimizer_states": [saved_optimizer.state_dict()]}

    module.on_load_checkpoint(checkpoint)
    optimizer = module.configure_optimizers()
    optimizer.load_state_dict(checkpoint["optimizer_states"][0])
    assert optimizer.param_groups[0]["fused"] is configured
    optimizer.step()  # and it steps


def test_a_sweep_job_refuses_to_start_after_attnlab_files_changed(make_cfg, monkeypatch, tmp_path):
    """A multirun composes each job from conf/ but runs the code it loaded at the start."""
    import attnlab.train as train_module

    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "old.yaml").write_text("a: 1\n")
    os.utime(conf / "old.yaml", (1_000, 1_000))
    (conf / "edited.yaml").write_text("a: 2\n")
    assert train_module.changed_since([conf], moment=2_000) == [str(conf / "edited.yaml")]

    cfg = make_cfg("debug=fdr")
    monkeypatch.setattr(train_module, "in_multirun", lambda: True)
    monkeypatch.setattr(train_module, "CODE_LOADED_AT", 0.0)  # every file is "newer"
    with pytest.raises(train_module.SourceChanged, match="Run the same command again"):
        train_module.train(cfg)
    monkeypatch.setattr(train_module, "CODE_LOADED_AT", time.time() + 60)
    assert train_module.train(cfg)["global_step"] == 1  # nothing changed: the job runs
