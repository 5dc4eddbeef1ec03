"""The commands' ``--help``: answered without Hydra's slow group listing, with the same content."""

from __future__ import annotations

import subprocess
import sys

from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.object_type import ObjectType

from attnlab.cli import config_groups


def hydra_listing() -> dict[str, list[str]]:
    """The app's config groups as Hydra's own --help finds them."""
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="attnlab.conf", version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        groups: dict[str, list[str]] = {}

        def walk(parent: str) -> None:
            for name in sorted(loader.list_groups(parent)):
                group = f"{parent}/{name}" if parent else name
                if group.startswith("hydra"):
                    continue
                options = loader.get_group_options(group, results_filter=ObjectType.CONFIG)
                if options:
                    groups[group] = sorted(options)
                walk(group)

        walk("")
    return groups


def test_the_groups_listed_are_the_ones_hydra_finds():
    assert config_groups() == hydra_listing()


def test_help_lists_groups_and_the_config_composed_with_the_overrides():
    out = subprocess.run(
        [sys.executable, "-m", "attnlab.train", "--help", "model=rnn_luong"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "== Configuration groups ==" in out and "== Config ==" in out
    assert "experiment/table3: A_h1, A_h16" in out
    assert "_target_: attnlab.models.rnn.LuongRNN" in out
    assert "--hydra-help" in out


def test_other_flags_still_go_to_hydra():
    out = subprocess.run(
        [sys.executable, "-m", "attnlab.train", "--cfg", "job", "model=rnn_luong"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "_target_: attnlab.models.rnn.LuongRNN" in out and "== Config ==" not in out
