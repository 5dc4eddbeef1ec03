"""``hydra.main`` for the attnlab commands, with a ``--help`` that answers in about a second.

Hydra's own ``--help`` lists the config groups by building a fresh config repository (a deep
copy of every loaded config) once per group: 2.2 s of ``attnlab-train --help`` on this machine,
most of it that copying. Here the groups are read from the folders of the ``attnlab.conf``
package and the config is composed once; the text has the same sections as Hydra's. Anything
else (``--hydra-help``, ``--cfg``, ``-m``, running the app) goes to Hydra unchanged.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:  # importlib.resources.abc is Python >= 3.11; attnlab supports 3.10
    from importlib.resources.abc import Traversable

CONFIG_PACKAGE = "attnlab.conf"
HELP_FLAGS = ("--help", "-h")


def hydra_app(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[..., Any]]:
    """Decorate a task function as Hydra would (``config_name`` from ``attnlab.conf``)."""

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[..., Any]:
        hydra_main = hydra.main(
            version_base="1.3", config_path=f"pkg://{CONFIG_PACKAGE}", config_name=config_name
        )(task)

        @functools.wraps(task)
        def main(cfg_passthrough: DictConfig | None = None) -> Any:
            args = sys.argv[1:]
            flags = [a for a in args if a.startswith("-")]
            if cfg_passthrough is None and flags and all(f in HELP_FLAGS for f in flags):
                overrides = [a for a in args if a not in HELP_FLAGS]
                print(app_help(config_name, overrides, command=_command_name()))
                return None
            return hydra_main(cfg_passthrough)

        return main

    return decorate


def config_groups(root: Traversable | None = None) -> dict[str, list[str]]:
    """``{group: [options]}`` of the config package, nested groups as ``a/b``; Hydra's own
    ``hydra/*`` groups are left out, as its app help leaves them out."""
    groups: dict[str, list[str]] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for child in sorted(folder.iterdir(), key=lambda c: c.name):
            if not child.is_dir() or child.name.startswith(("_", ".")):
                continue
            if not prefix and child.name == "hydra":
                continue
            group = prefix + child.name
            options = sorted(
                c.name.removesuffix(".yaml") for c in child.iterdir() if c.name.endswith(".yaml")
            )
            if options:
                groups[group] = options
            walk(child, group + "/")

    walk(root or files(CONFIG_PACKAGE), "")
    return groups


def app_help(config_name: str, overrides: list[str], command: str = "attnlab") -> str:
    """The help text: the config groups and the config composed with ``overrides``."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from attnlab.config import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_PACKAGE, version_base="1.3"):
        cfg = compose(config_name, overrides=overrides)
    groups = "\n".join(f"{group}: {', '.join(opts)}" for group, opts in config_groups().items())
    return (
        f"{command}: an attnlab command, powered by Hydra.\n\n"
        "== Configuration groups ==\n"
        "Compose your configuration from those groups (group=option)\n\n"
        f"{groups}\n\n\n"
        "== Config ==\n"
        "Override anything in the config (foo.bar=value)\n\n"
        f"{OmegaConf.to_yaml(cfg)}\n"
        f"Hydra's own options (launchers, sweepers, --cfg, -m): {command} --hydra-help"
    )


def _command_name() -> str:
    return sys.argv[0].rsplit("/", 1)[-1] or "attnlab"
