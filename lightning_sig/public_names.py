"""The public names of lightning_sig: the one list the package's entry points are made from or
checked against (issue 19).

- :data:`TORCH_NAMES`: the pure-torch names (activations of eq. 1, the paper's networks of
  Tables 1–3, the speed-ups and thread choice), in ``lightning_sig`` and both namespace modules;
- :data:`LIGHTNING_CLASSES`: our LightningModules, DataModule and callbacks, one ``class``
  statement per Lightning namespace in :data:`NAMESPACE_MODULES`; the ``pytorch_lightning``
  ones are also ``lightning_sig.<Name>`` (the configs' ``class_path`` s);
- :data:`CLI_CLASSES`: the CLI's own callbacks, in the namespace modules only.

``lightning_sig/__init__.py`` derives its lazy exports from these, the CLI its class-path
translation (:func:`lightning_sig.lightning.cli.translate_class_paths`), and
tests/test_public_names.py checks that both namespace modules define exactly these classes.
This module imports nothing, so ``import lightning_sig`` stays free of torch and Lightning.
"""
from __future__ import annotations

from typing import Dict, Tuple

__all__ = ["TORCH_NAMES", "LIGHTNING_CLASSES", "CLI_CLASSES", "NAMESPACE_MODULES",
           "PUBLIC_MODULES"]

#: Pure-torch public name → the module that defines it.
TORCH_NAMES: Dict[str, str] = {
    "ACTIVATIONS": "lightning_sig.nn.activations",
    "ScaledActivation": "lightning_sig.nn.activations",
    "scaled_activation": "lightning_sig.nn.activations",
    "ConvNetSpec": "lightning_sig.nn.convnets",
    "SigmoidConvNet": "lightning_sig.nn.convnets",
    "TABLE1": "lightning_sig.nn.convnets",
    "TABLE2": "lightning_sig.nn.convnets",
    "TABLE3": "lightning_sig.nn.convnets",
    "init_parameters": "lightning_sig.nn.convnets",
    "enable_speedups": "lightning_sig.speedups",
    "disable_speedups": "lightning_sig.speedups",
    "choose_threads": "lightning_sig.thread_choice",
    "restore_threads": "lightning_sig.thread_choice",
}

#: Our Lightning classes, defined once per namespace (a mixin body + that namespace's base).
LIGHTNING_CLASSES: Tuple[str, ...] = (
    "SigmoidNetModule", "LargeParamsNet", "ManyLayersNet", "CombinedNet", "CIFAR10DataModule",
    "GradientQuantileCallback", "NonFiniteLossGuard", "SaturationMonitor")

#: The LightningCLI's callbacks (lightning_sig.lightning.cli), per namespace, not top-level.
CLI_CLASSES: Tuple[str, ...] = ("ResumeSaveConfigCallback", "RemoveFailedStartLogs")

#: Lightning namespace → the module whose ``class`` statements define our classes for it.
NAMESPACE_MODULES: Dict[str, str] = {
    "pytorch_lightning": "lightning_sig.lightning.pytorch_lightning",
    "lightning.pytorch": "lightning_sig.lightning.pytorch"}

#: Lightning namespace → the module users and configs name our classes by
#: (``lightning_sig.CombinedNet``, ``lightning_sig.lightning.pytorch.CombinedNet``).
PUBLIC_MODULES: Dict[str, str] = {
    "pytorch_lightning": "lightning_sig",
    "lightning.pytorch": "lightning_sig.lightning.pytorch"}
