"""What the GradientQuantileCallback reads from a module: its parameters and gradients in
model order (cached layouts), one snapshot per member for many-seeds modules
(:mod:`lightning_sig.nn.member_protocol`; every member's flat gradient as a row of one tensor
when the module has ``member_gradient_rows``), and the data-loss gradient g − ∇penalty for
modules with ``penalty_gradients()`` (:mod:`lightning_sig.gradients.penalty`). A base of
:class:`~lightning_sig.lightning.grad_callback.GradientQuantileCallbackMixin`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from torch import Tensor

from lightning_sig.gradients.buffer import GradientSnapshot, flatten_gradients
from lightning_sig.gradients.penalty import data_gradients, flat_data_gradient
from lightning_sig.gradients.segments import SEGMENTED_MAX_NUMEL
from lightning_sig.nn.member_protocol import member_seeds_of

if TYPE_CHECKING:  # annotations only: the body serves both Lightning namespaces
    import pytorch_lightning as pl

__all__ = ["GradientGatheringMixin"]

Gathered = Tuple[GradientSnapshot, Optional[Tensor]]  # (layout and tensors, flat (N,) or None)


class GradientGatheringMixin:
    """The gathering half of the callback (state in ``_params``, ``_layouts``, ``per_layer``,
    ``data_gradient``; see the callback)."""

    @staticmethod
    def _buffered(numel: int) -> bool:
        """Whether a gradient of ``numel`` coordinates gets buffered statistics of a flat copy
        (at most :data:`~lightning_sig.gradients.segments.SEGMENTED_MAX_NUMEL`, read only here)
        rather than the large-model path, which reads the snapshot's tensors."""
        return numel <= SEGMENTED_MAX_NUMEL

    def _named_parameters(self, pl_module: pl.LightningModule) -> List[Tuple[str, Tensor]]:
        """(layer name, parameter) of every parameter, in model order; cached per module (a
        ``named_parameters`` walk costs ~100 µs per step), rebuilt at every epoch start."""
        if self._params is None or self._params[0] is not pl_module:
            self._layouts = {}
            self._params = (pl_module, [(name.rpartition(".")[0] or "<root>", p)
                                        for name, p in pl_module.named_parameters()])
        return self._params[1]

    def _gather(self, pl_module: pl.LightningModule, hist_now: bool
                ) -> Tuple[List[Gathered], List[Gathered]]:
        """(snapshot, flat (N,) or None) of each gradient set (one per member) and of its
        data-loss gradient (see :meth:`_data_snapshots`); a flat where the statistics are
        buffered (N ≤ ``SEGMENTED_MAX_NUMEL``) or histograms are due (``hist_now``). Both
        empty if no parameter has a gradient."""
        gathered = None if hist_now else self._member_rows(pl_module)
        if gathered is not None:
            return gathered
        gradient_sets = self._gradient_sets(pl_module)
        if not gradient_sets:
            return [], []
        flats = [flatten_gradients(s.grads) if hist_now or self._buffered(sum(s.sizes))
                 else None for s in gradient_sets]  # (N,) once
        return (list(zip(gradient_sets, flats)),
                self._data_snapshots(pl_module, gradient_sets, flats))

    def _member_rows(self, pl_module: pl.LightningModule
                     ) -> Optional[Tuple[List[Gathered], List[Gathered]]]:
        """:meth:`_gather` for a members module with ``member_gradient_rows``
        (:mod:`lightning_sig.nn.member_protocol`): each member's flat is a row of one (S, N)
        tensor (the buffer copies it), its snapshot the layout only (``grads`` empty: buffered
        statistics read names and sizes). None where that does not apply (no members, no
        method, more than ``SEGMENTED_MAX_NUMEL`` coordinates per member)."""
        seeds = member_seeds_of(pl_module)
        method = getattr(pl_module, "member_gradient_rows", None) if seeds else None
        if method is None or not self._buffered(-(-self._numel(pl_module) // len(seeds))):
            return None  # per member: ceil(N_all / S)
        rows = method(self.data_gradient and hasattr(pl_module, "penalty_gradients"),
                      self._named_parameters(pl_module))
        if rows is None:
            return [], []
        if not self._buffered(rows.rows.shape[1]):  # not stacked as counted: per member
            return None
        snap = GradientSnapshot(rows.names, rows.sizes, rows.counts, [])
        return ([(snap, row) for row in rows.rows.unbind(0)],
                [] if rows.data is None else [(snap, row) for row in rows.data.unbind(0)])

    def _module_snapshot(self, pl_module: pl.LightningModule) -> GradientSnapshot:
        """The gradients (not None) of the trainable parameters, in model order, with their
        layers; the layout is cached per set of parameters with a gradient."""
        params = self._named_parameters(pl_module)
        present = tuple(i for i, (_, p) in enumerate(params)
                        if p.grad is not None and p.requires_grad)
        grads = [params[i][1].grad for i in present]
        layout = self._layouts.get(present)
        if layout is None:
            layers: Dict[str, List[Tensor]] = {}
            for i, g in zip(present, grads):
                layers.setdefault(params[i][0], []).append(g)
            layout = self._layouts[present] = GradientSnapshot.of_layers(layers)[:3]
        return GradientSnapshot(*layout, grads)

    def _gradient_sets(self, pl_module: pl.LightningModule) -> List[GradientSnapshot]:
        """One snapshot of the gradients, or one per member for our ``num_members > 1`` modules
        (each with a single network's layer names, so members get the tags of separate runs);
        empty if no parameter has a gradient."""
        if member_seeds_of(pl_module):  # lightning_sig.nn.member_protocol
            return [GradientSnapshot.of_layers(layers) for layers in
                    pl_module.member_gradients() if layers]
        snap = self._module_snapshot(pl_module)
        return [snap] if snap.grads else []

    def _numel(self, pl_module: pl.LightningModule) -> int:
        """N, coordinates of the trainable parameters (cached with the parameter list)."""
        params = self._named_parameters(pl_module)
        if len(self._params) < 3:
            self._params = (*self._params, sum(p.numel() for _, p in params if p.requires_grad))
        return self._params[2]

    def _data_snapshots(self, pl_module: pl.LightningModule,
                        gradient_sets: List[GradientSnapshot], flats: List[Optional[Tensor]]
                        ) -> List[Tuple[GradientSnapshot, Optional[Tensor]]]:
        """(snapshot, flat or None) of the data-loss gradient g − ∇penalty of each gradient set
        (one per member), with the layouts of the total ones; empty without the
        ``penalty_gradients`` protocol, with a zero penalty or ``data_gradient=False``."""
        if not self.data_gradient or not hasattr(pl_module, "penalty_gradients"):
            return []
        seeds = member_seeds_of(pl_module)
        if seeds:
            from lightning_sig.gradients.penalty import member_data_layers
            snaps = [GradientSnapshot.of_layers(layers) for layers in
                     member_data_layers(pl_module, len(seeds)) if layers]
            return [(s, flatten_gradients(s.grads) if self._buffered(sum(s.sizes))
                     else None) for s in snaps]
        snap, flat = gradient_sets[0], flats[0]
        if flat is not None and self._buffered(sum(snap.sizes)):  # one flat op
            data = flat_data_gradient(pl_module, flat, self._snapshot_params(pl_module, snap))
            return [] if data is None else [(snap, data)]
        grads = data_gradients(pl_module, self._named_parameters(pl_module), snap.grads)
        return [] if grads is None else [(snap._replace(grads=grads), None)]

    def _snapshot_params(self, pl_module: pl.LightningModule,
                         snap: GradientSnapshot) -> List[Tensor]:
        """The parameters whose gradients are ``snap.grads``, in that order."""
        by_grad = {id(p.grad): p for _, p in self._named_parameters(pl_module)
                   if p.grad is not None}
        return [by_grad[id(g)] for g in snap.grads]
