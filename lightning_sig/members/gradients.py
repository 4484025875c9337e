"""The gradients of a many-seeds module (parameters stacked on dim 0, shape (S, ...), see
:mod:`lightning_sig.members`) per member, as the GradientQuantileCallback reads them: one dict
of per-member slices each (:func:`member_layer_gradients`; :func:`member_data_layers` for the
data-loss gradient g − ∇penalty), or every member's flat gradient as a row of one (S, N) tensor
(:func:`member_gradient_rows`, the vectorised path: ~2 concatenations per step instead of
S × P slices and S concatenations). Layer names are a single network's, so member s's
statistics get the tags of a separate run.
"""
from __future__ import annotations

import functools
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

__all__ = ["member_layer_gradients", "member_data_layers", "MemberGradientRows",
           "member_gradient_rows"]


def member_layer_gradients(module: nn.Module, num_members: int) -> List[Dict[str, List[Tensor]]]:
    """Per member s: layer qualified name → [grad[s] of its parameters] (None grads skipped).

    The names are those of a single-network module (``net.features.0``), so per-member gradient
    statistics get the tags of separate runs (``grad/net.features.0/abs_q50``).
    """
    layers: List[Dict[str, List[Tensor]]] = [{} for _ in range(num_members)]
    for name, p in module.named_parameters():
        if p.requires_grad and p.grad is not None:
            layer = name.rpartition(".")[0] or "<root>"
            for s in range(num_members):
                layers[s].setdefault(layer, []).append(p.grad[s])
    return layers


@torch.no_grad()
def member_data_layers(module: object, num_members: int) -> List[Dict[str, List[Tensor]]]:
    """Per member s: layer name → [grad[s] − ∇penalty[s] of its parameters], laid out as
    :func:`member_layer_gradients` lays out the total gradient.

    Args:
        module: parameters stacked on dim 0 (S, ...), with ``penalty_gradients()`` (parameter →
            ∇penalty, same shape; :mod:`lightning_sig.gradients.penalty`).
        num_members: S.

    Returns:
        S dicts, or an empty list when the penalty mapping is empty (no data-loss gradient
        apart from the total).
    """
    penalty = module.penalty_gradients()
    if not penalty:
        return []
    layers: List[Dict[str, List[Tensor]]] = [{} for _ in range(num_members)]
    for name, p in module.named_parameters():
        if p.requires_grad and p.grad is not None:
            layer, pg = name.rpartition(".")[0] or "<root>", penalty.get(p)
            for s in range(num_members):
                g = p.grad[s]
                layers[s].setdefault(layer, []).append(g if pg is None else g - pg[s].to(g.dtype))
    return layers


class MemberGradientRows(NamedTuple):
    """Every member's gradient as one row: the layout of
    ``GradientSnapshot.of_layers(member_layer_gradients(...)[s])`` (``names``: "global", then the
    layers; ``sizes``: coordinates per layer; ``counts``: tensors per layer; the same for every
    member), ``rows`` (S, N), row s member s's flat gradient, and ``data`` (S, N), the rows of
    the data-loss gradient g − ∇penalty, or None."""

    names: Tuple[str, ...]
    sizes: Tuple[int, ...]
    counts: Tuple[int, ...]
    rows: Tensor
    data: Optional[Tensor]


def _cat_rows(pieces: List[Tensor]) -> Tensor:
    """(S, n_i) pieces → (S, N), mixed dtypes promoted as ``flatten_gradients`` does."""
    dtype = pieces[0].dtype
    if any(t.dtype != dtype for t in pieces):
        dtype = functools.reduce(torch.promote_types, {t.dtype for t in pieces})
        pieces = [t.to(dtype) for t in pieces]
    return torch.cat(pieces, dim=1)


@torch.no_grad()
def member_gradient_rows(module: nn.Module, num_members: int,
                         penalty: Optional[Mapping[Tensor, Tensor]] = None,
                         layer_parameters: Optional[Sequence[Tuple[str, Tensor]]] = None
                         ) -> Optional[MemberGradientRows]:
    """All members' gradients at once: row s of ``rows`` is bitwise ``flatten_gradients`` of
    member s's list in :func:`member_layer_gradients`: G, one concatenation of
    ``p.grad.reshape(S, -1)`` in model order, instead of S × P slices and S concatenations.

    With a non-empty ``penalty`` (``module.penalty_gradients()``: parameter → ∇penalty, r·θ for
    the l2 term of Sec. 2.2, same (S, ...) shape as the parameter) also ``data`` = G − P, P one
    concatenation of the penalty gradients (each cast to its gradient's dtype; zeros for a
    parameter absent from the mapping, which so contributes its plain gradient): bitwise
    :func:`~lightning_sig.gradients.penalty.member_data_layers`' g[s] − pg[s] + flatten, the same
    float operation per coordinate (with mixed gradient dtypes, g − pg per tensor, then promoted).

    Args:
        module: parameters stacked on dim 0 (S, ...), S = ``num_members``.
        num_members: S.
        penalty: the penalty mapping, or None (as an empty one: ``data`` None).
        layer_parameters: (layer name, parameter) pairs in model order, as a caller caches them
            (layer = qualified name up to its last dot, ``"<root>"`` for none); None walks
            ``module.named_parameters()``.

    Returns:
        The layout, ``rows`` and ``data`` (new tensors), or None when no trainable parameter has
        a gradient. Parameters with ``requires_grad=False`` or ``grad is None`` are skipped;
        sparse gradients are made dense.

    Raises:
        ValueError: a gradient whose leading dimension is not S, or a penalty entry whose shape
            differs from its parameter's (each names the parameter's layer and shapes).
    """
    if layer_parameters is None:
        layer_parameters = [(name.rpartition(".")[0] or "<root>", p)
                            for name, p in module.named_parameters()]
    sizes: Dict[str, int] = {}
    counts: Dict[str, int] = {}
    grads, pens = [], []
    for layer, p in layer_parameters:
        g = p.grad
        if g is None or not p.requires_grad:
            continue
        if g.shape[:1] != (num_members,):
            raise ValueError(f"member_gradient_rows: a gradient of layer {layer} has shape "
                             f"{tuple(g.shape)}, not ({num_members}, ...) for "
                             f"{num_members} members.")
        g = (g if g.layout == torch.strided else g.to_dense()).reshape(num_members, -1)
        sizes[layer] = sizes.get(layer, 0) + g.shape[1]
        counts[layer] = counts.get(layer, 0) + 1
        grads.append(g)
        if penalty:
            pg = penalty.get(p)
            if pg is not None:
                if pg.shape != p.shape:
                    raise ValueError(f"penalty_gradients() has shape {tuple(pg.shape)} for a "
                                     f"parameter of layer {layer} of shape {tuple(p.shape)}; "
                                     f"it must be the penalty's gradient at that parameter.")
                pg = pg.reshape(g.shape)
                pg = pg if pg.dtype == g.dtype else pg.to(g.dtype)
            pens.append(pg)
    if not grads:
        return None
    layout = (("global",) + tuple(sizes), tuple(sizes.values()), tuple(counts.values()))
    rows = _cat_rows(grads)  # G (S, N)
    if not penalty:
        return MemberGradientRows(*layout, rows, None)
    if any(g.dtype != rows.dtype for g in grads):  # g − pg per tensor, then promoted
        data = _cat_rows([g if pg is None else g - pg for g, pg in zip(grads, pens)])
    else:  # one dtype: G − P
        data = rows - torch.cat([g.new_zeros(g.shape) if pg is None else pg
                                 for g, pg in zip(grads, pens)], dim=1)
    return MemberGradientRows(*layout, rows, data)
