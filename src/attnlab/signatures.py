"""The parameters of an attnlab ``_target_``, read from its source file without importing it.

Importing a model module imports torch (1.5 s on a 2-core machine). Reading the class's
``__init__`` with ``ast`` gives its parameter names, literal defaults and annotations in a few
milliseconds, enough to name a mistyped key or a value of the wrong type before torch loads.
Targets outside attnlab, or whose parameters cannot be read this way, give ``None``; the full
check on the imported object covers them.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import types
import typing
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig

NO_DEFAULT = object()  # a parameter without a default, or one that is not a literal
_UNKNOWN_TYPE = object()  # an annotation naming more than plain types: not checked here
_ANNOTATION_NAMES = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "list": list,
    "tuple": tuple,
    "dict": dict,
    "Any": Any,
    "Sequence": typing.Sequence,
}


@dataclass(frozen=True)
class SourceSignature:
    parameters: tuple[str, ...]
    defaults: dict[str, Any]  # name -> literal default, or NO_DEFAULT
    hints: dict[str, Any]  # name -> evaluated annotation, where it evaluates to plain types
    takes_any: bool  # a **kwargs parameter


@functools.cache
def _module_tree(module_name: str) -> ast.Module | None:
    """The parsed source of an attnlab module, found without importing it (its parent packages
    are imported); None when it has no Python source to read."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    with open(spec.origin, encoding="utf-8") as source:
        return ast.parse(source.read(), spec.origin)


@functools.cache
def source_signature(target: str) -> SourceSignature | None:
    """The signature of ``target`` (``attnlab.pkg.module.Name``: a class or a function)."""
    module_name, _, name = target.rpartition(".")
    tree = _module_tree(module_name) if module_name.startswith("attnlab.") else None
    for node in tree.body if tree is not None else []:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return _signature(node, is_method=False)
        if isinstance(node, ast.ClassDef) and node.name == name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    return _class_signature(tree, module_name, node, item)
            return None  # an inherited __init__ or a dataclass: import it to know
    return None


def _class_signature(
    tree: ast.Module, module_name: str, cls: ast.ClassDef, init: ast.FunctionDef
) -> SourceSignature:
    """A class's ``__init__`` parameters, with its base class's when it hands ``**kwargs`` on
    to ``super().__init__`` (as ``SpeechDataModule`` does to ``Seq2SeqDataModule``)."""
    own = _signature(init, is_method=True)
    call = _super_init_call(init)
    base = _base_target(tree, module_name, cls)
    inherited = source_signature(base) if own.takes_any and call is not None and base else None
    if inherited is None:
        return own
    # What the subclass passes to super() itself, by position or by name, is not the user's.
    fixed = {*inherited.parameters[: len(call.args)], *(k.arg for k in call.keywords if k.arg)}
    extra = [p for p in inherited.parameters if p not in own.parameters and p not in fixed]
    return SourceSignature(
        parameters=(*own.parameters, *extra),
        defaults={**{p: inherited.defaults[p] for p in extra}, **own.defaults},
        hints={**{p: h for p, h in inherited.hints.items() if p in extra}, **own.hints},
        takes_any=inherited.takes_any,
    )


def _super_init_call(init: ast.FunctionDef) -> ast.Call | None:
    """``init``'s ``super().__init__(..., **kwargs)`` call; None when it does not hand its
    ``**kwargs`` on that way."""
    kwargs = init.args.kwarg.arg if init.args.kwarg else None
    for node in ast.walk(init):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "__init__"
            and isinstance(node.func.value, ast.Call)
            and isinstance(node.func.value.func, ast.Name)
            and node.func.value.func.id == "super"
            and any(
                k.arg is None and isinstance(k.value, ast.Name) and k.value.id == kwargs
                for k in node.keywords
            )
        ):
            return node
    return None


def _base_target(tree: ast.Module, module_name: str, cls: ast.ClassDef) -> str | None:
    """The dotted name of a class's single base, defined in or imported into its module."""
    if len(cls.bases) != 1 or not isinstance(cls.bases[0], ast.Name):
        return None
    base = cls.bases[0].id
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == base:
            return f"{module_name}.{base}"
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                if (alias.asname or alias.name) == base:
                    return f"{node.module}.{alias.name}"
    return None


HEAVY_PACKAGES = ("torch", "lightning", "transformers")


@functools.cache
def imports_heavy_packages(module_name: str) -> bool:
    """Whether importing ``module_name`` (an attnlab module) imports torch or Lightning, read
    from the top-level imports of its source and of the attnlab modules it imports."""
    tree = _module_tree(module_name)
    if tree is None:
        return True  # cannot tell: assume it does
    for node in tree.body:  # top level only: imports inside functions and TYPE_CHECKING are lazy
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            if name.split(".")[0] in HEAVY_PACKAGES:
                return True
            if name.startswith("attnlab.") and imports_heavy_packages(name):
                return True
    return False


def _signature(function: ast.FunctionDef, is_method: bool) -> SourceSignature:
    args = function.args
    positional = [*args.posonlyargs, *args.args][1 if is_method else 0 :]
    defaults: dict[str, Any] = {a.arg: NO_DEFAULT for a in [*positional, *args.kwonlyargs]}
    for arg, default in zip(reversed(positional), reversed(args.defaults), strict=False):
        defaults[arg.arg] = _literal(default)
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if default is not None:
            defaults[arg.arg] = _literal(default)
    hints = {}
    for arg in [*positional, *args.kwonlyargs]:
        if arg.annotation is not None:
            hint = _annotation(arg.annotation)
            if hint is not _UNKNOWN_TYPE:
                hints[arg.arg] = hint
    return SourceSignature(tuple(defaults), defaults, hints, args.kwarg is not None)


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return NO_DEFAULT


def _annotation(node: ast.expr) -> Any:
    text = node.value if isinstance(node, ast.Constant) else ast.unparse(node)
    try:  # only names of plain types are known here: anything else (torch.Tensor) is skipped
        return eval(str(text), {"__builtins__": {}}, dict(_ANNOTATION_NAMES))  # noqa: S307
    except Exception:
        return _UNKNOWN_TYPE


def accepts(hint: Any, value: Any) -> bool:
    """Whether a config value can be passed to a parameter annotated ``hint``."""
    if value is None or hint is Any:
        return True  # None: "use the default"; checked by the component itself
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(accepts(arg, value) for arg in typing.get_args(hint) if arg is not type(None))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, typing.Sequence) or hint in (list, tuple):
        return isinstance(value, list | tuple | ListConfig)
    if origin is dict or hint is dict:
        return isinstance(value, dict | DictConfig)
    return True


def type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
