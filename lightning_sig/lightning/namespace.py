"""Which Lightning namespace an object belongs to, and our classes for each namespace.

Lightning ships the same framework under two package names, and each checks ``isinstance``
against its own base classes: a ``pytorch_lightning.LightningModule`` is refused by a
``lightning.pytorch.Trainer``. So every Lightning class of ours is written once as a mixin
without a Lightning base (``lightning_sig.lightning.modules``, ``data``, ``grad_callback``,
``nonfinite``, ``saturation_monitor``, ``failed_start``, ``resume_config``) and gets one
``class`` statement per namespace, as Lightning-AI's litmodels does for its checkpoint
callbacks:

- :mod:`lightning_sig.lightning.pytorch_lightning` for ``pytorch_lightning`` (the default;
  also ``lightning_sig.CombinedNet``, ..., what the configs' ``class_path`` s name);
- :mod:`lightning_sig.lightning.pytorch` for ``lightning.pytorch`` (``pip install lightning``).

Both sets exist side by side in one process; nothing picks a namespace per process. This
module imports neither the mixins nor the namespace modules (they import it): it looks the
classes up by name (:data:`~lightning_sig.public_names.NAMESPACE_MODULES`).
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Dict

from lightning_sig.public_names import CLI_CLASSES, LIGHTNING_CLASSES, NAMESPACE_MODULES, \
    PUBLIC_MODULES

__all__ = ["NAMESPACES", "import_namespace", "lightning_classes", "build_classes",
           "namespace_of", "check_namespace"]

#: Lightning namespace → the module users name our classes for it by.
NAMESPACES: Dict[str, str] = PUBLIC_MODULES
_PIP_NAME = {"pytorch_lightning": "pytorch-lightning", "lightning.pytorch": "lightning"}


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


def lightning_classes(namespace: str) -> Dict[str, type]:
    """Our Lightning classes for ``namespace`` (``pytorch_lightning`` or ``lightning.pytorch``).

    Returns:
        name → class for each of :data:`~lightning_sig.public_names.LIGHTNING_CLASSES`
        (``SigmoidNetModule``, ..., ``SaturationMonitor``) and the CLI's
        ``ResumeSaveConfigCallback`` and ``RemoveFailedStartLogs``, as defined in
        :data:`~lightning_sig.public_names.NAMESPACE_MODULES` ``[namespace]``.

    Raises:
        ValueError: unknown ``namespace``. ImportError: its package is not installed.
    """
    import_namespace(namespace)
    module = importlib.import_module(NAMESPACE_MODULES[namespace])
    return {name: getattr(module, name) for name in LIGHTNING_CLASSES + CLI_CLASSES}


#: The name of :func:`lightning_classes` before issue 19 (when it built the classes with type()).
build_classes = lightning_classes


def namespace_of(obj: object) -> str:
    """``pytorch_lightning`` or ``lightning.pytorch``: the namespace ``obj``'s class comes from
    (``lightning.pytorch.Trainer`` → ``lightning.pytorch``; our ``CombinedNet`` from either
    module → the namespace of its LightningModule base); ``""`` for neither."""
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
    ours, theirs = namespace_of(component), namespace_of(trainer)
    if ours and theirs and ours != theirs:
        name = type(component).__qualname__
        raise TypeError(
            f"{NAMESPACES[ours]}.{name} is built on {ours}, but the Trainer is a {theirs}.Trainer: "
            f"use {NAMESPACES[theirs]}.{name} with {theirs} (or a {ours}.Trainer).")
