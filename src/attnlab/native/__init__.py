"""Native CPU kernels for beam search and training (``kernels.c``): built with the system's C
compiler on first use, cached, and called through ctypes.

A beam search step on a CPU streams more memory than the L3 cache holds (the weights, the
caches, ``beams x V`` logits), so the number of passes over memory, not FLOPs, sets much of its
time. Three steps that ATen runs as many passes are fused here:

- :func:`log_softmax_topk`: a row's log-softmax and its k best tokens (ties to the lowest
  index), without writing the ``[rows, V]`` log-probs;
- :func:`beam_self_attention`: decoder self-attention over a :class:`BeamKVCache`, reading
  only each row's ancestors' keys and values;
- :func:`attention`: a decoding step's cross-attention (a few queries per row and head), scores,
  mask, softmax and weighted sum in one pass.

Additive attention scores ``v^T tanh(U h_j + W s)``, Bahdanau's and Luong's concat
(:func:`additive_scores`, and in teacher forcing their backward, :func:`additive_scores_grad`),
read the projected keys once and never write the ``[B, S, A]`` tanh (the backward recomputes it).

Three more serve an fp32 training step, where short sequences make ATen's kernels spend
their time on overheads and single-threaded passes:

- :func:`training_attention` and :func:`training_attention_grad`: whole-sequence attention,
  forward and backward, as register-blocked products per batch row and head (SDPA's CPU kernel
  pays per-block overheads at Multi30k's lengths);
- :func:`dropout_apply`: dropout from Philox4x32-10 bits drawn on every thread, applied in the
  same pass, and drawn again for the backward instead of storing a mask;
- :func:`transpose`: the transposed operand of a weight gradient through oneDNN, which torch
  copies on one thread, with the column sums (the bias gradient) in the same pass.

In training, :func:`smoothed_cross_entropy` and :func:`smoothed_cross_entropy_grad` are the
label-smoothed loss over ``[tokens, V]`` logits and its gradient (losses.py), in two reads of
the logits and one read and one write, where log_softmax, gather, mean and the backward's exp,
subtract and scale take seven passes; their exp is also cheaper than ATen's (Sleef's, 1 ulp).

Each returns ``None`` where it does not apply (off, no compiler, not a CPU tensor, another
dtype, gradients needed); callers then take the PyTorch path, which gives the same results up
to float rounding. The build is keyed by the source, the compiler and the CPU's flags
(``-march=native``), so machines sharing a home directory never load each other's builds.
``ATTNLAB_NATIVE_CACHE`` moves the cache (default ``~/.cache/attnlab/native``).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import math
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

from attnlab.cpuinfo import cpu_flags

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("kernels.c")
# -fno-trapping-math: without AVX-512's masks GCC 12 will not vectorise the compare-and-select in
# the exp loops unless it may ignore FP exceptions (which nothing here reads); on an AVX2-only
# Zen 3 the log-softmax kernel ran 3x slower without it (5.1 against 1.7 ms for [256, 8000]).
FLAGS = ["-O3", "-march=native", "-fno-trapping-math", "-fopenmp", "-fPIC", "-shared"]
_DTYPES = (torch.float32, torch.bfloat16)

_enabled = True
_library: ctypes.CDLL | None = None
_tried = False
_lock = threading.Lock()


def use_native_kernels(enabled: bool) -> None:
    """Switch the native kernels on (the default) or off (the PyTorch path everywhere)."""
    global _enabled
    _enabled = bool(enabled)


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "attnlab" / "native"
    return Path(os.environ.get("ATTNLAB_NATIVE_CACHE", default))


def build(compiler: str | None = None) -> Path:
    """Compile ``kernels.c`` into the cache (once per source, compiler and CPU) and return the
    shared library's path. Raises ``RuntimeError`` with the compiler's output if that fails."""
    compiler = compiler or os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C compiler {compiler!r} on PATH (set CC)")
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(
        "\n".join(
            [
                SOURCE.read_text(),
                compiler,
                version,
                " ".join(FLAGS),
                platform.machine(),
                " ".join(sorted(cpu_flags())),
            ]
        ).encode()
    ).hexdigest()[:16]
    target = cache_dir() / f"kernels-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Built under a temporary name and renamed: concurrent processes never load half a file.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        done = subprocess.run(
            [compiler, *FLAGS, str(SOURCE), "-o", tmp, "-lm"], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"{compiler} failed on {SOURCE}:\n{done.stderr.strip()}")
        # mkstemp made it private (0600); a shared cache must be readable by every user.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o755 & ~umask)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _load() -> ctypes.CDLL | None:
    global _library, _tried
    with _lock:
        if not _tried:
            _tried = True
            try:
                library = ctypes.CDLL(str(build()))
            except (RuntimeError, OSError) as err:
                log.warning("native decoding kernels unavailable, using PyTorch's: %s", err)
                return None
            p, i64, c_int = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
            library.log_softmax_topk.argtypes = [p, c_int] + [i64] * 6 + [p, p, p, c_int]
            library.log_softmax_topk.restype = None
            library.beam_self_attention.argtypes = (
                [p] * 5 + [c_int] + [i64] * 7 + [ctypes.c_float, c_int]
            )
            library.beam_self_attention.restype = None
            library.attention.argtypes = [p] * 5 + [c_int] + [i64] * 6 + [ctypes.c_float, c_int]
            library.attention.restype = None
            library.smoothed_ce_forward.argtypes = (
                [p, c_int, i64, i64, p, i64, ctypes.c_float] + [p] * 3 + [c_int]
            )
            library.smoothed_ce_forward.restype = None
            library.smoothed_ce_backward.argtypes = (
                [p, c_int, i64, i64] + [p] * 3 + [ctypes.c_float, p, c_int]
            )
            library.smoothed_ce_backward.restype = None
            library.additive_scores.argtypes = [p] * 4 + [i64] * 3 + [c_int]
            library.additive_scores.restype = None
            library.additive_scores_backward.argtypes = [p] * 7 + [i64] * 3 + [c_int]
            library.additive_scores_backward.restype = None
            library.transpose.argtypes = [p, i64, i64, i64, p, p, c_int]
            library.transpose.restype = None
            library.attention_train_forward.argtypes = (
                [p] * 4 + [c_int] + [p] * 2 + [i64] * 6 + [p, ctypes.c_float, c_int]
            )
            library.attention_train_forward.restype = None
            library.attention_train_backward.argtypes = (
                [p] * 7 + [c_int] + [p] * 3 + [i64] * 6 + [p, ctypes.c_float, c_int]
            )
            library.attention_train_backward.restype = None
            library.dropout_apply.argtypes = [p, p, c_int, i64, ctypes.c_uint64, ctypes.c_uint32]
            library.dropout_apply.argtypes += [ctypes.c_float, c_int]
            library.dropout_apply.restype = None
            _library = library
    return _library


def available() -> bool:
    """Whether the kernels are switched on and built (building them now if need be)."""
    return _enabled and _load() is not None


def _applies(*tensors: torch.Tensor) -> bool:
    dtype = tensors[0].dtype
    return (
        _enabled
        and dtype in _DTYPES
        and all(t.device.type == "cpu" and t.dtype == dtype for t in tensors)
        and not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
        and _load() is not None
    )


def log_softmax_topk(
    logits: torch.Tensor,
    k: int,
    *,
    eos: int,
    ban_eos: bool = False,
    force_eos: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The fp32 log-softmax values ``[rows, k]`` of each row's k best tokens of ``logits
    [rows, V]``, best first, ties in log-prob to the lowest index, and their tokens; as
    ``_topk_lowest_index_first(_next_log_probs(logits, ...), k)``: ``ban_eos`` makes ``eos``
    -inf (before ``min_len``) and ``force_eos [rows]`` (bool) makes every token but ``eos`` -inf
    in its rows. ``None`` where the kernel does not apply."""
    if logits.dim() != 2 or not 1 <= k <= min(64, logits.size(1)) or logits.stride(1) != 1:
        return None
    if force_eos is not None and force_eos.shape != (logits.size(0),):
        raise ValueError(
            f"force_eos needs one flag per row {logits.size(0)}, got {force_eos.shape}"
        )
    if not _applies(logits):
        return None
    rows, vocab = logits.shape
    value = torch.empty(rows, k, dtype=torch.float32)
    index = torch.empty(rows, k, dtype=torch.long)
    force = None
    if force_eos is not None:
        force = force_eos.to(device="cpu", dtype=torch.uint8).contiguous()
    _library.log_softmax_topk(
        logits.data_ptr(),
        int(logits.dtype == torch.bfloat16),
        rows,
        vocab,
        logits.stride(0),
        k,
        eos,
        eos if ban_eos else -1,
        None if force is None else force.data_ptr(),
        value.data_ptr(),
        index.data_ptr(),
        torch.get_num_threads(),
    )
    return value, index


def beam_self_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    ancestry: torch.Tensor,
) -> torch.Tensor | None:
    """``softmax(q k^T / sqrt(d_k)) v`` of each row's ``query [rows, h, 1, d_k]`` over its past
    in beam buffers ``key [n, h, capacity, K, d_k]`` / ``value [n, h, capacity, K, d_v]``: step
    ``j`` of row ``r`` is slot ``ancestry[r, j]`` (``[rows, length]``). Returns
    ``[rows, h, 1, d_v]`` in the buffers' dtype, or ``None`` where the kernel does not apply."""
    n, h, capacity, beams, d_k = key.shape
    rows, length = ancestry.shape
    if (
        query.shape != (rows, h, 1, d_k)
        or rows != n * beams
        or not 0 < length <= capacity
        or value.shape[:4] != key.shape[:4]
        or not (key.is_contiguous() and value.is_contiguous())
        or ancestry.dtype != torch.long
        or not _applies(query, key, value)
    ):
        return None
    query = query.to(key.dtype).contiguous()
    ancestry = ancestry.contiguous()
    d_v = value.size(-1)
    out = key.new_empty(rows, h, 1, d_v)
    _library.beam_self_attention(
        query.data_ptr(),
        key.data_ptr(),
        value.data_ptr(),
        ancestry.data_ptr(),
        out.data_ptr(),
        int(key.dtype == torch.bfloat16),
        n,
        beams,
        h,
        d_k,
        d_v,
        capacity,
        length,
        1.0 / math.sqrt(d_k),
        torch.get_num_threads(),
    )
    return out


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """``softmax(q k^T / sqrt(d_k)) v`` for ``query [B, h, T, d_k]`` against ``key [B, h, S,
    d_k]`` and ``value [B, h, S, d_v]``, keys where ``allowed`` (bool, broadcastable to
    ``[B, 1, 1, S]``) is False masked out. ``[B, h, T, d_v]`` in the inputs' dtype, or ``None``
    where the kernel does not apply."""
    b, h, t, d_k = query.shape
    s = key.size(2)
    if (
        key.shape != (b, h, s, d_k)
        or value.shape[:3] != (b, h, s)
        or (allowed is not None and (allowed.dtype != torch.bool or allowed.dim() != 4))
        or (allowed is not None and allowed.shape[1:3] != (1, 1))
        or (allowed is not None and allowed.device.type != "cpu")
        or s == 0
        or not _applies(query, key, value)
    ):
        return None
    mask = None
    if allowed is not None:
        mask = allowed.expand(b, 1, 1, s).reshape(b, s).to(torch.uint8).contiguous()
    query, key, value = query.contiguous(), key.contiguous(), value.contiguous()
    d_v = value.size(-1)
    out = query.new_empty(b, h, t, d_v)
    _library.attention(
        query.data_ptr(),
        key.data_ptr(),
        value.data_ptr(),
        None if mask is None else mask.data_ptr(),
        out.data_ptr(),
        int(query.dtype == torch.bfloat16),
        b,
        h,
        t,
        s,
        d_k,
        d_v,
        1.0 / math.sqrt(d_k),
        torch.get_num_threads(),
    )
    return out


def _valid_targets(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> bool:
    """Whether the loss kernels can take these: the kernels index rows by target unchecked."""
    if logits.dim() != 2 or target.shape != (logits.size(0),) or target.dtype != torch.long:
        return False
    if target.device.type != "cpu" or torch.compiler.is_compiling() or not _applies(logits):
        return False  # (dynamo cannot trace the ctypes call: PyTorch's path, no graph break)
    inside = (target >= 0) & (target < logits.size(1))
    return bool((inside | (target == ignore_index)).all())


def smoothed_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, epsilon: float, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Per row of ``logits [rows, V]`` (fp32 or bf16, fp32 arithmetic) and ``target [rows]``:
    the log of the sum of exps, the NLL and the label-smoothed loss ``(1 - epsilon) * NLL +
    epsilon * mean_v(-log p_v)``, all fp32 ``[rows]``, the last two 0 where the target is
    ``ignore_index``; without writing the ``[rows, V]`` log-probs. ``None`` where the kernel does
    not apply (then a target out of range gets PyTorch's error)."""
    if not _valid_targets(logits, target, ignore_index):
        return None
    logits, target = logits.contiguous(), target.contiguous()
    rows, vocab = logits.shape
    lse, nll, loss = (torch.empty(rows, dtype=torch.float32) for _ in range(3))
    _library.smoothed_ce_forward(
        logits.data_ptr(),
        int(logits.dtype == torch.bfloat16),
        rows,
        vocab,
        target.data_ptr(),
        ignore_index,
        epsilon,
        lse.data_ptr(),
        nll.data_ptr(),
        loss.data_ptr(),
        torch.get_num_threads(),
    )
    return lse, nll, loss


def smoothed_cross_entropy_grad(
    logits: torch.Tensor,
    target: torch.Tensor,
    lse: torch.Tensor,
    row_weight: torch.Tensor,
    epsilon: float,
) -> torch.Tensor | None:
    """The gradient of ``sum_r row_weight[r] * loss[r]`` (the loss of
    :func:`smoothed_cross_entropy`, whose ``lse`` it takes) w.r.t. ``logits``, in their dtype:
    ``row_weight * (softmax - epsilon / V - (1 - epsilon) * onehot(target))``."""
    if not _applies(logits) or lse.dtype != torch.float32:
        return None
    logits, target = logits.contiguous(), target.contiguous()
    weight = row_weight.to(torch.float32).contiguous()
    rows, vocab = logits.shape
    grad = torch.empty_like(logits)
    _library.smoothed_ce_backward(
        logits.data_ptr(),
        int(logits.dtype == torch.bfloat16),
        rows,
        vocab,
        target.data_ptr(),
        lse.contiguous().data_ptr(),
        weight.data_ptr(),
        epsilon,
        grad.data_ptr(),
        torch.get_num_threads(),
    )
    return grad


def _additive_applies(keys: torch.Tensor, query: torch.Tensor, v: torch.Tensor) -> bool:
    b, s, a = keys.shape if keys.dim() == 3 else (0, 0, -1)
    return (
        a > 0
        and query.shape == (b, a)
        and v.numel() == a
        and keys.dtype == torch.float32  # fp32 only (the decoding kernels also take bf16)
        and not torch.compiler.is_compiling()
        and _applies(keys, query, v)
    )


def additive_scores(
    keys: torch.Tensor, query: torch.Tensor, v: torch.Tensor
) -> torch.Tensor | None:
    """``(tanh(keys + query[:, None]) @ v)``: scores ``[B, S]`` of the projected keys ``[B, S, A]``
    for the projected queries ``[B, A]`` and the score vector ``v`` (``A`` values), fp32 CPU
    tensors; no autograd (the caller's Function gives the backward). ``None`` where the kernel
    does not apply."""
    if not _additive_applies(keys, query, v):
        return None
    keys, query, v = keys.contiguous(), query.contiguous(), v.reshape(-1).contiguous()
    b, s, a = keys.shape
    scores = keys.new_empty(b, s)
    _library.additive_scores(
        keys.data_ptr(),
        query.data_ptr(),
        v.data_ptr(),
        scores.data_ptr(),
        b,
        s,
        a,
        torch.get_num_threads(),
    )
    return scores


def additive_scores_grad(
    keys: torch.Tensor,
    query: torch.Tensor,
    v: torch.Tensor,
    grad_scores: torch.Tensor,
    grad_keys: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The backward of :func:`additive_scores` for ``grad_scores [B, S]``: the query's and
    ``v``'s gradients (``[B, A]``, ``[A]``), with the keys' added in place into ``grad_keys``
    (contiguous ``[B, S, A]`` fp32, a sum over several calls; ``None``: not wanted). ``None``
    where the kernel does not apply."""
    if not _additive_applies(keys, query, v) or grad_scores.shape != keys.shape[:2]:
        return None
    if grad_keys is not None and (
        grad_keys.shape != keys.shape
        or grad_keys.dtype != torch.float32
        or not grad_keys.is_contiguous()
    ):
        return None
    keys, query, v = keys.contiguous(), query.contiguous(), v.reshape(-1).contiguous()
    grad_scores = grad_scores.to(torch.float32).contiguous()
    b, s, a = keys.shape
    grad_query, grad_v_rows = query.new_empty(b, a), query.new_empty(b, a)
    _library.additive_scores_backward(
        keys.data_ptr(),
        query.data_ptr(),
        v.data_ptr(),
        grad_scores.data_ptr(),
        None if grad_keys is None else grad_keys.data_ptr(),
        grad_query.data_ptr(),
        grad_v_rows.data_ptr(),
        b,
        s,
        a,
        torch.get_num_threads(),
    )
    return grad_query, grad_v_rows.sum(0)


def transpose(
    matrix: torch.Tensor, *, column_sums: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """``matrix [rows, cols]`` (fp32, CPU, unit column stride) transposed into a new contiguous
    ``[cols, rows]``, and with ``column_sums`` its columns' sums ``[cols]`` (accumulated in
    fp64), from one read. No autograd. ``None`` where the kernel does not apply."""
    if (
        matrix.dim() != 2
        or matrix.dtype != torch.float32
        or (matrix.size(1) > 1 and matrix.stride(1) != 1)
        or matrix.numel() == 0
        or torch.compiler.is_compiling()
        or not _applies(matrix)
    ):
        return None
    rows, cols = matrix.shape
    out = matrix.new_empty(cols, rows)
    sums = matrix.new_empty(cols) if column_sums else None
    _library.transpose(
        matrix.data_ptr(),
        rows,
        cols,
        matrix.stride(0),
        out.data_ptr(),
        None if sums is None else sums.data_ptr(),
        torch.get_num_threads(),
    )
    return out, sums


def _loaded() -> ctypes.CDLL:
    library = _load()
    if library is None:
        raise RuntimeError("the native kernels are not built (see training_attention_applies)")
    return library


def _key_mask(allowed: torch.Tensor | None, batch: int, keys: int) -> torch.Tensor | None:
    """``allowed`` (bool, broadcastable to ``[batch, 1, 1, keys]``) as contiguous uint8
    ``[batch, keys]``; raises ``ValueError`` for any other mask."""
    if allowed is None:
        return None
    if allowed.dtype != torch.bool or allowed.dim() != 4 or allowed.shape[1:3] != (1, 1):
        raise ValueError(f"a key mask [B, 1, 1, S] is needed, got {tuple(allowed.shape)}")
    return allowed.expand(batch, 1, 1, keys).reshape(batch, keys).to(torch.uint8).contiguous()


def _strides(*tensors: torch.Tensor) -> torch.Tensor:
    return torch.tensor([t.stride(i) for t in tensors for i in range(3)], dtype=torch.int64)


def training_attention_applies(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    allowed: torch.Tensor | None,
    causal: bool,
) -> bool:
    """Whether :func:`training_attention` takes these: fp32 CPU ``[B, H, T, d]`` operands with
    unit-strided last dimensions, a key mask ``[B, 1, 1, S]`` (or none), ``causal`` only for
    ``T == S``, and a key every query may attend to."""
    if query.dim() != 4 or key.dim() != 4 or value.dim() != 4:
        return False
    b, h, t, d_k = query.shape
    s = key.size(2)
    if (
        key.shape != (b, h, s, d_k)
        or value.shape[:3] != (b, h, s)
        or s == 0
        # head sizes in whole register blocks
        or d_k % 16
        or value.size(3) % 16
        or (causal and t != s)
        or any(x.stride(3) != 1 for x in (query, key, value))
        or query.dtype != torch.float32
        or not all(x.device.type == "cpu" and x.dtype == query.dtype for x in (key, value))
        or torch.compiler.is_compiling()
        or not _enabled
        or _load() is None
    ):
        return False
    if allowed is None:
        return True
    if allowed.dtype != torch.bool or allowed.dim() != 4 or allowed.shape[1:3] != (1, 1):
        return False
    if allowed.device.type != "cpu" or allowed.size(0) not in (1, b) or allowed.size(3) != s:
        return False
    rows = allowed[:, 0, 0, :]
    # With causal attention query 0 sees key 0 only; otherwise a row needs one allowed key.
    return bool(rows[:, 0].all() if causal else rows.any(-1).all())


def training_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    allowed: torch.Tensor | None,
    causal: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(q k^T / sqrt(d_k)) v`` (keys masked where ``allowed`` is False and, with
    ``causal``, after the query's position) of fp32 ``query [B, H, T, d_k]``, ``key
    [B, H, S, d_k]``, ``value [B, H, S, d_v]``, as :func:`training_attention_applies` admits:
    ``[B, H, T, d_v]`` (a view of a contiguous ``[B, T, H, d_v]``) and the log of each query's
    sum of exps ``[B, H, T]`` for :func:`training_attention_grad`. No autograd."""
    b, h, t, d_k = query.shape
    s, d_v = key.size(2), value.size(3)
    mask = _key_mask(allowed, b, s)
    out = query.new_empty(b, t, h, d_v)
    lse = query.new_empty(b, h, t)
    layout = _strides(query, key, value)
    _loaded().attention_train_forward(
        query.data_ptr(),
        key.data_ptr(),
        value.data_ptr(),
        None if mask is None else mask.data_ptr(),
        int(causal),
        out.data_ptr(),
        lse.data_ptr(),
        b,
        h,
        t,
        s,
        d_k,
        d_v,
        layout.data_ptr(),
        1.0 / math.sqrt(d_k),
        torch.get_num_threads(),
    )
    return out.transpose(1, 2), lse


def training_attention_grad(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    grad_out: torch.Tensor,
    allowed: torch.Tensor | None,
    causal: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients of :func:`training_attention`'s output w.r.t. query, key and value, for
    ``grad_out [B, H, T, d_v]``, from its ``out`` and ``lse``: each a view ``[B, H, ., d]`` of a
    contiguous ``[B, ., H, d]``."""
    b, h, t, d_k = query.shape
    s, d_v = key.size(2), value.size(3)
    if grad_out.stride(3) != 1:
        grad_out = grad_out.contiguous()
    mask = _key_mask(allowed, b, s)
    grads = (
        query.new_empty(b, t, h, d_k),
        query.new_empty(b, s, h, d_k),
        query.new_empty(b, s, h, d_v),
    )
    layout = _strides(query, key, value, out, grad_out)
    _loaded().attention_train_backward(
        query.data_ptr(),
        key.data_ptr(),
        value.data_ptr(),
        out.data_ptr(),
        grad_out.data_ptr(),
        lse.contiguous().data_ptr(),
        None if mask is None else mask.data_ptr(),
        int(causal),
        *(g.data_ptr() for g in grads),
        b,
        h,
        t,
        s,
        d_k,
        d_v,
        layout.data_ptr(),
        1.0 / math.sqrt(d_k),
        torch.get_num_threads(),
    )
    return tuple(g.transpose(1, 2) for g in grads)


def dropout_applies(x: torch.Tensor) -> bool:
    """Whether :func:`dropout_apply` takes ``x``: a CPU fp32 or bf16 tensor, not compiled."""
    return (
        x.device.type == "cpu"
        and x.dtype in _DTYPES
        and not torch.compiler.is_compiling()
        and _enabled
        and _load() is not None
    )


def dropout_apply(x: torch.Tensor, seed: int, drop_levels: int, scale: float) -> torch.Tensor:
    """``x`` with each element kept (times ``scale``) or zeroed by Philox4x32-10 bits under key
    ``seed`` (a 64-bit int): dropped with probability ``drop_levels / 65536``. The same seed and
    shape drop the same elements, so the backward calls it on the gradient. No autograd."""
    x = x.contiguous()
    out = torch.empty_like(x)
    _loaded().dropout_apply(
        x.data_ptr(),
        out.data_ptr(),
        int(x.dtype == torch.bfloat16),
        x.numel(),
        seed & (2**64 - 1),
        drop_levels,
        scale,
        torch.get_num_threads(),
    )
    return out
