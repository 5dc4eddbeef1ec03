"""``attnlab-predict ckpt_path=PATH [input=FILE] [output=FILE] [decode=beam] [nbest=4]``.

Reads one input per line (stdin or ``input``), writes one output per line in the same order
(stdout or ``output``); an empty line gives an empty line. With ``nbest > 1`` each input gives
``nbest`` lines ``<line number>\\t<score>\\t<output>``. When stdin is a terminal it answers each
line as it is typed. Logging goes to stderr, so stdout holds only outputs.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from typing import Any, TextIO

from omegaconf import DictConfig, OmegaConf

from attnlab.cli import hydra_app
from attnlab.config import register_resolvers

log = logging.getLogger("attnlab.predict")
register_resolvers()


def predict(cfg: DictConfig, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Run the command; returns the number of inputs answered."""
    from attnlab.inference import Predictor
    from attnlab.models.linear import use_onednn
    from attnlab.native import use_native_kernels

    use_onednn(cfg.get("onednn_linear", "auto"))
    use_native_kernels(cfg.get("native_kernels", True))
    predictor = Predictor.from_checkpoint(cfg.ckpt_path, device=cfg.device)
    decode: dict[str, Any] = {}
    if cfg.get("decode") is not None:
        decode = OmegaConf.to_container(cfg.decode, resolve=True)
        if "strategy" in decode:  # decode=beam replaces the checkpoint's settings; a key alone
            predictor.decode = {}  # (+decode.beam_size=8) changes only that one
    nbest = cfg.nbest if cfg.nbest != 1 else decode.get("nbest", 1)
    decode.pop("nbest", None)
    predictor.decode_settings(nbest, **decode)  # bad settings fail before reading input

    with ExitStack() as files:
        source = stdin or sys.stdin
        if cfg.input is not None:
            source = files.enter_context(open(cfg.input, encoding="utf-8"))
        sink = stdout or sys.stdout
        if cfg.output is not None:
            sink = files.enter_context(open(cfg.output, "w", encoding="utf-8"))
        interactive = cfg.interactive
        if interactive is None:
            interactive = cfg.input is None and source.isatty()
        chunk_size = 1 if interactive else cfg.buffer_size
        if interactive:
            print("attnlab-predict: type a line, get its output (Ctrl-D ends)", file=sys.stderr)
        answered = 0
        for lines in _chunks(source, chunk_size):
            results = predictor.predict_nbest(
                lines, nbest=nbest, max_tokens=cfg.max_tokens, **decode
            )
            for offset, best in enumerate(results):
                if nbest == 1:
                    sink.write(best[0].text + "\n")
                else:
                    for hypothesis in best:
                        sink.write(
                            f"{answered + offset}\t{hypothesis.score:.4f}\t{hypothesis.text}\n"
                        )
            sink.flush()
            answered += len(lines)
    log.info("answered %d inputs", answered)
    return answered


def _chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    """Lines without their newline, ``size`` at a time (batching needs a buffer to sort)."""
    chunk: list[str] = []
    for line in lines:
        chunk.append(line.rstrip("\r\n"))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@hydra_app("predict")
def main(cfg: DictConfig) -> None:
    from attnlab.checkpoints import CheckpointError
    from attnlab.config_errors import ConfigError
    from attnlab.data.tasks import DataFileError
    from attnlab.inference import InputError

    try:
        predict(cfg)
    except ConfigError as error:
        raise SystemExit(f"attnlab: config error: {error}") from None
    except (
        CheckpointError,
        FileNotFoundError,
        UnicodeDecodeError,
        DataFileError,
        InputError,
    ) as error:
        raise SystemExit(f"attnlab: {error}") from None


if __name__ == "__main__":
    main()
