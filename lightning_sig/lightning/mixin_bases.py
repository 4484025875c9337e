"""The declared bases of our Lightning mixins, for readers, type checkers and IDEs.

Each mixin (:mod:`~lightning_sig.lightning.modules`, :mod:`~lightning_sig.lightning.data`, the
callbacks) is one body for both Lightning namespaces, so at run time it cannot derive from
``pytorch_lightning.LightningModule`` or ``lightning.pytorch.LightningModule``: the class
statements in :mod:`lightning_sig.lightning.pytorch_lightning` and
:mod:`lightning_sig.lightning.pytorch` put it on one of them. For a type checker the mixin
derives from the ``pytorch_lightning`` base, so ``self.log``, ``self.trainer`` and
``save_hyperparameters`` are declared; at run time these names are ``object`` (the same MRO as a
mixin without a base). Nothing here is imported at run time.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["ModuleBase", "DataModuleBase", "CallbackBase", "SaveConfigCallbackBase"]

if TYPE_CHECKING:
    from pytorch_lightning import Callback as CallbackBase
    from pytorch_lightning import LightningDataModule as DataModuleBase
    from pytorch_lightning import LightningModule as ModuleBase
    from pytorch_lightning.cli import SaveConfigCallback as SaveConfigCallbackBase
else:
    CallbackBase = DataModuleBase = ModuleBase = SaveConfigCallbackBase = object
