"""What the GradientQuantileCallback reads from a module at an optimizer step: every gradient to
record as a :class:`~lightning_sig.gradients.grad_row.GradientRow` (the total gradient, per
member for many-seeds modules, and the data-loss gradient g − ∇penalty for modules with
``penalty_gradients()``), from the parameters in model order (cached)."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from lightning_sig.gradients.grad_row import GradientRow
from lightning_sig.gradients.grad_snapshot import GradientSnapshot, flatten_gradients
from lightning_sig.gradients.kernel_row import KernelRow, kernel_available
from lightning_sig.gradients.penalty import data_gradients, flat_data_gradient, l2_spec
from lightning_sig.gradients.row_key import RowKey
from lightning_sig.gradients.step_lane import StepLane, make_lane
from lightning_sig.members.gradients import member_data_layers
from lightning_sig.members.interface import member_gradient_rows_of, member_seeds_of

if TYPE_CHECKING:  # annotations only: the body serves both Lightning namespaces
    import pytorch_lightning as pl

__all__ = ["GradientReader", "FLAT_MAX_NUMEL"]

#: Gradients of up to this many coordinates (per member) are first concatenated into one flat
#: tensor (one C++ op; also what the data-loss gradient and the members' rows are computed
#: on), or, for a single network on the CPU with the compiled kernel, written by it straight
#: into the buffer rows (:class:`~lightning_sig.gradients.kernel_row.KernelRow`); larger ones
#: are copied tensor by tensor into the callback's buffer.
FLAT_MAX_NUMEL = 1 << 22
_WRAPPERS = re.compile(r"(^|\.)_(fsdp_wrapped_module|checkpoint_wrapped_module|orig_mod)(?=\.|$)")


def layer_name(parameter_name: str) -> str:
    """A parameter's layer (its module's qualified name, ``<root>`` for none), without the
    wrapper modules FSDP, activation checkpointing and ``torch.compile`` insert."""
    return _WRAPPERS.sub("", parameter_name.rpartition(".")[0]).lstrip(".") or "<root>"


class GradientReader:
    """The gradients of a module, cached parameter layouts.

    Args:
        per_layer: rows with a group per layer after "global" (else "global" only).
        data_gradient: also the data-loss gradient of modules with ``penalty_gradients()``.
    """

    def __init__(self, per_layer: bool, data_gradient: bool) -> None:
        self.per_layer, self.data_gradient = per_layer, data_gradient
        self._module: Optional[object] = None
        self._params: List[Tuple[str, Tensor]] = []  # (layer, parameter) in model order
        self._numel = 0
        self._seeds: Optional[List[int]] = None  # the module's member seeds (None: not members)
        self._layouts: Dict[Tuple[int, ...], tuple] = {}  # parameters with a grad -> (layout,
        # parameters in the layout's order, kernel rows, their indices in self._params)
        self._last_params: List[Tensor] = []  # those of the last snapshot
        self._kernel_rows = (False, False)  # the last snapshot's: (total, data) KernelRows
        self._present: Tuple[int, ...] = ()  # indices of the last snapshot's parameters
        self._lane: Optional[tuple] = None  # (what it was made for, the last step lane)

    def reset(self) -> None:
        """Forget the cached parameters (they may have been added or replaced)."""
        self._module, self._params, self._layouts, self._last_params = None, [], {}, []
        self._kernel_rows, self._present, self._lane = (False, False), (), None

    def parameters(self, pl_module: pl.LightningModule) -> List[Tuple[str, Tensor]]:
        """(layer name, parameter) of every parameter, in model order; cached per module (a
        ``named_parameters`` walk costs ~100 µs per step)."""
        if self._module is not pl_module:
            self._module, self._layouts = pl_module, {}
            self._params = [(layer_name(n), p) for n, p in pl_module.named_parameters()]
            self._numel = sum(p.numel() for _, p in self._params if p.requires_grad)
            self._seeds = member_seeds_of(pl_module)  # a Protocol check: ~20 µs, once
        return self._params

    def seeds(self, pl_module: pl.LightningModule) -> Optional[List[int]]:
        """The member seeds of a many-seeds module, else None (cached with the parameters)."""
        self.parameters(pl_module)
        return self._seeds

    def numel(self, pl_module: pl.LightningModule) -> int:
        """N, coordinates of the trainable parameters (this process's, when sharded)."""
        self.parameters(pl_module)
        return self._numel

    def read(self, pl_module: pl.LightningModule, histogram_step: bool) -> List[GradientRow]:
        """The rows of this step (empty if no parameter has a gradient). ``histogram_step``:
        a many-seeds module is read per member (its rows path is for other steps)."""
        rows = None if histogram_step else self._member_rows(pl_module)
        if rows is not None:
            return rows
        snapshots = self._snapshots(pl_module)
        out, flats = [], []
        for member, snap in enumerate(snapshots):
            small = sum(snap.sizes) <= FLAT_MAX_NUMEL
            flat = flatten_gradients(snap.grads) if small and not self._kernel_rows[0] \
                else None
            flats.append(flat)
            data = KernelRow(snap.grads) if small and self._kernel_rows[0] else \
                snap.grads if flat is None else flat
            out.append(self._row(RowKey(member, "grad"), snap, data))
        return out + self._data_rows(pl_module, snapshots, flats)

    def lane(self, pl_module: pl.LightningModule, log_every: int, every_k: int
             ) -> Optional[StepLane]:
        """The step lane (:mod:`~lightning_sig.gradients.step_lane`) of the last
        :meth:`read`'s layout, with the logging interval ``log_every`` and the epoch means'
        step interval ``every_k``; None where its steps need the general path: many-seeds
        modules, no compiled kernel row, parameters other than float32 (their gradients are
        converted by the general path), more than :data:`FLAT_MAX_NUMEL` coordinates, a
        data-loss gradient not given by ``penalty_l2`` (module docstring of
        :mod:`~lightning_sig.gradients.penalty`)."""
        params = self._last_params
        if self.seeds(pl_module) or not params or not self._kernel_rows[1] or \
                sum(p.numel() for p in params) > FLAT_MAX_NUMEL:
            return None
        key, l2, r, spec_params = RowKey(0, "grad"), None, 0.0, None
        keys = (key,)
        if self.data_gradient and hasattr(pl_module, "penalty_gradients"):
            l2 = getattr(pl_module, "penalty_l2", None)
            spec = l2() if l2 is not None else None
            if spec is not None and l2_spec(pl_module, params):
                keys, r, spec_params = (key, key._replace(source="grad_data")), spec[0], spec[1]
            elif l2 is None or spec is not None or pl_module.penalty_gradients():
                return None  # a data row by the general path
        ident = (self._present, keys, r, log_every, every_k, l2)
        if self._lane is not None and self._lane[0] == ident and \
                self._lane[1].spec_params is spec_params:
            return self._lane[1]  # e.g. after a logged step: the same lane
        present = set(self._present)
        absent = [p for i, (_, p) in enumerate(self._params) if p.requires_grad
                  and i not in present]
        layout = self._row(key, GradientSnapshot(*self._layouts[self._present][0], []),
                           None).layout
        lane = make_lane(keys, layout, params, absent, l2, r, spec_params, log_every, every_k)
        self._lane = None if lane is None else (ident, lane)
        return lane

    def _row(self, key: RowKey, snap: GradientSnapshot, data) -> GradientRow:
        if self.per_layer:
            return GradientRow(key, snap.names, snap.sizes, True, data)
        return GradientRow(key, snap.names[:1], (sum(snap.sizes),), False, data)

    def _member_rows(self, pl_module: pl.LightningModule) -> Optional[List[GradientRow]]:
        """Rows of a members module with ``member_gradient_rows`` (each member's flat gradient
        a row of one (S, N) tensor); None where that does not apply (no members, no method,
        more than :data:`FLAT_MAX_NUMEL` coordinates per member)."""
        seeds = self.seeds(pl_module)
        method = member_gradient_rows_of(pl_module) if seeds else None
        if method is None or -(-self.numel(pl_module) // len(seeds)) > FLAT_MAX_NUMEL:
            return None
        rows = method(self.data_gradient and hasattr(pl_module, "penalty_gradients"),
                      self.parameters(pl_module))
        if rows is None:
            return []
        if rows.rows.shape[1] > FLAT_MAX_NUMEL:  # not stacked as counted: per member
            return None
        snap = GradientSnapshot(rows.names, rows.sizes, rows.counts, [])
        out = [self._row(RowKey(s, "grad"), snap, row) for s, row in enumerate(rows.rows)]
        if rows.data is not None:
            out += [self._row(RowKey(s, "grad_data"), snap, row)
                    for s, row in enumerate(rows.data)]
        return out

    def _snapshots(self, pl_module: pl.LightningModule) -> List[GradientSnapshot]:
        """One snapshot, or one per member for ``num_members > 1`` modules (a single network's
        layer names, so members get the tags of separate runs); empty without gradients."""
        if self.seeds(pl_module):  # lightning_sig.members.interface
            return [GradientSnapshot.of_layers(layers) for layers in
                    pl_module.member_gradients() if layers]
        params = self.parameters(pl_module)
        all_grads = [p.grad if p.requires_grad else None for _, p in params]  # .grad read once
        present = tuple(i for i, g in enumerate(all_grads) if g is not None)
        layout = self._layouts.get(present)
        if layout is None:
            layers: Dict[str, List[int]] = {}
            for i in present:
                layers.setdefault(params[i][0], []).append(i)
            index = [i for ids in layers.values() for i in ids]  # layer by layer
            ordered = [params[i][1] for i in index]
            names, sizes, counts, _ = GradientSnapshot.of_layers(
                {name: [params[i][1] for i in ids] for name, ids in layers.items()})
            layout = self._layouts[present] = ((names, sizes, counts), ordered,
                                               _kernel_rows(ordered), index)
        self._last_params, self._kernel_rows, self._present = layout[1], layout[2], present
        grads = [all_grads[i] for i in layout[3]]
        return [GradientSnapshot(*layout[0], grads)] if grads else []

    def _data_rows(self, pl_module: pl.LightningModule, snapshots: List[GradientSnapshot],
                   flats: List[Optional[Tensor]]) -> List[GradientRow]:
        """Rows of the data-loss gradient g − ∇penalty with the total ones' layouts; none
        without the ``penalty_gradients`` protocol, with a zero penalty or when off."""
        if not snapshots or not self.data_gradient or \
                not hasattr(pl_module, "penalty_gradients"):
            return []
        key = RowKey(0, "grad_data")
        seeds = self.seeds(pl_module)
        if seeds:
            snaps = [GradientSnapshot.of_layers(layers) for layers in
                     member_data_layers(pl_module, len(seeds)) if layers]
            return [self._row(key._replace(member=s), snap, flatten_gradients(snap.grads)
                              if sum(snap.sizes) <= FLAT_MAX_NUMEL else snap.grads)
                    for s, snap in enumerate(snaps)]
        snap, flat = snapshots[0], flats[0]
        params = self.parameters(pl_module)
        small = sum(snap.sizes) <= FLAT_MAX_NUMEL
        if small and self._kernel_rows[1]:
            spec = l2_spec(pl_module, self._last_params)  # g − r·θ written by the kernel
            if spec is not None:
                return [self._row(key, snap, KernelRow(snap.grads, spec[1], spec[0]))]
        if small and flat is None:  # the total went by KernelRow; the mapping needs it flat
            if not pl_module.penalty_gradients():
                return []  # no penalty (r = 0)
            flat = flatten_gradients(snap.grads)
        if flat is not None:  # one flat op; the parameters in the snapshot's order
            data = flat_data_gradient(pl_module, flat, self._last_params)
        else:
            data = data_gradients(pl_module, params, snap.grads)
        return [] if data is None else [self._row(key, snap, data)]


def _kernel_rows(params: List[Tensor]) -> Tuple[bool, bool]:
    """Whether the kernel can write the rows of these parameters' gradients: (the total
    gradient: CPU, no float64; the data-loss gradient g − r·θ: also all float32). A gradient
    has its parameter's dtype and device (autograd's rule), so this holds per layout."""
    if not params or not kernel_available():
        return False, False
    cpu = all(p.device.type == "cpu" for p in params)
    total = cpu and all(p.dtype in (torch.float32, torch.float16, torch.bfloat16)
                        for p in params)
    return total, total and all(p.dtype == torch.float32 for p in params)
