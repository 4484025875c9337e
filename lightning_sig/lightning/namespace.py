"""One body, two Lightning namespaces: our Lightning classes for ``pytorch_lightning`` and for
``lightning.pytorch``.

Lightning ships the same framework under two package names, and each checks ``isinstance``
against its own base classes: a ``pytorch_lightning.LightningModule`` is refused by a
``lightning.pytorch.Trainer``. So every Lightning class here is written once as a mixin without
a Lightning base (``lightning_sig.lightning.modules``, ``data``, ``grad_callback``, ``nonfinite``,
``saturation``) and :func:`build_classes` derives one class per namespace from it, as Lightning-AI's
litmodels does for its checkpoint callbacks. The classes live in

- ``lightning_sig`` (``lightning_sig.CombinedNet``, ...) for ``pytorch_lightning`` (the default,
  and what the configs' ``class_path`` s name);
- ``lightning_sig.lightning.pytorch`` for ``lightning.pytorch`` (``pip install lightning``).

Both sets exist side by side in one process; nothing picks a namespace per process.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Dict, Tuple

__all__ = ["NAMESPACES", "import_namespace", "build_classes", "namespace_of", "check_namespace"]

#: Lightning namespace → the module our classes for it live in.
NAMESPACES: Dict[str, str] = {"pytorch_lightning": "lightning_sig",
                              "lightning.pytorch": "lightning_sig.lightning.pytorch"}
_PIP_NAME = {"pytorch_lightning": "pytorch-lightning", "lightning.pytorch": "lightning"}
_built: Dict[str, Dict[str, type]] = {}


def import_namespace(namespace: str) -> ModuleType:
    """``import <namespace>``, with an error that says what to install.

    Raises:
        ValueError: ``namespace`` is not one of :data:`NAMESPACES`.
        ImportError: that package is not installed.
    """
    if namespace not in NAMESPACES:
        raise ValueError(f"unknown Lightning namespace {namespace!r}; valid: {sorted(NAMESPACES)}")
    try:
        return importlib.import_module(namespace)
    except ImportError as error:
        raise ImportError(f"lightning_sig's {namespace} classes need `pip install "
                          f"{_PIP_NAME[namespace]}` ({error}).") from error


def _derive(mixin: type, bases: Tuple[type, ...], namespace: str) -> type:
    """``class <Name>(mixin, *bases)`` named after the mixin without its ``Mixin`` suffix."""
    name = mixin.__name__[: -len("Mixin")]
    return type(name, (mixin, *bases), {
        "__module__": NAMESPACES[namespace], "__qualname__": name, "__doc__": mixin.__doc__,
        "lightning_namespace": namespace})


def build_classes(namespace: str) -> Dict[str, type]:
    """Our LightningModules, DataModule and callbacks for ``namespace`` (built once, cached).

    Returns:
        name → class for ``SigmoidNetModule``, ``LargeParamsNet``, ``ManyLayersNet``,
        ``CombinedNet``, ``CIFAR10DataModule``, ``GradientQuantileCallback``,
        ``NonFiniteLossGuard``, ``SaturationMonitor`` and the CLI's ``ResumeSaveConfigCallback`` and
        ``RemoveFailedStartLogs``.
    """
    if namespace in _built:
        return _built[namespace]
    pl = import_namespace(namespace)
    from lightning_sig.lightning import cli, data, failed_start, grad_callback, modules, nonfinite, \
        saturation
    cli_module = importlib.import_module(f"{namespace}.cli")
    base = _derive(modules.SigmoidNetModuleMixin, (pl.LightningModule,), namespace)
    classes = {"SigmoidNetModule": base}
    for mixin in (modules.LargeParamsNetMixin, modules.ManyLayersNetMixin,
                  modules.CombinedNetMixin):
        cls = _derive(mixin, (base,), namespace)
        classes[cls.__name__] = cls
    for mixin, lightning_base in (
            (data.CIFAR10DataModuleMixin, pl.LightningDataModule),
            (grad_callback.GradientQuantileCallbackMixin, pl.Callback),
            (nonfinite.NonFiniteLossGuardMixin, pl.Callback),
            (saturation.SaturationMonitorMixin, pl.Callback),
            (failed_start.RemoveFailedStartLogsMixin, pl.Callback),
            (cli.ResumeSaveConfigCallbackMixin, cli_module.SaveConfigCallback)):
        cls = _derive(mixin, (lightning_base,), namespace)
        classes[cls.__name__] = cls
    _built[namespace] = classes
    return classes


def namespace_of(obj: object) -> str:
    """``pytorch_lightning`` or ``lightning.pytorch``: the namespace ``obj``'s class comes from
    (``lightning.pytorch.Trainer`` → ``lightning.pytorch``); ``""`` for neither."""
    for cls in type(obj).__mro__:
        module = cls.__module__
        if module.startswith("lightning.pytorch") or module.startswith("pytorch_lightning"):
            return "lightning.pytorch" if module.startswith("lightning.") else "pytorch_lightning"
    return ""


def check_namespace(component: object, trainer: object) -> None:
    """Raise if ``component`` (one of our classes) and ``trainer`` come from different
    Lightning namespaces, naming both and the class to use instead.

    Raises:
        TypeError: e.g. ``lightning_sig.GradientQuantileCallback`` (pytorch_lightning) given to a
            ``lightning.pytorch.Trainer``.
    """
    ours = getattr(component, "lightning_namespace", "")
    theirs = namespace_of(trainer)
    if ours and theirs and ours != theirs:
        name = type(component).__qualname__
        raise TypeError(
            f"{NAMESPACES[ours]}.{name} is built on {ours}, but the Trainer is a {theirs}.Trainer: "
            f"use {NAMESPACES[theirs]}.{name} with {theirs} (or a {ours}.Trainer).")
