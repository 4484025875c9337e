"""The one declared interface of members mode: what the package calls on a many-seeds object.

Why one file: the callbacks, the event writers and the fused kernels treat a module with
``num_members = S > 1`` differently from one network (each member is logged as a separate run).
Every name they use on such an object is declared here as a ``typing.Protocol``, and they ask
through the functions below (:func:`member_seeds_of`, :func:`member_gradient_rows_of`) instead
of probing attributes; tests/test_members_interface.py checks that every ``member_*`` attribute
the package reads on another object is declared here. This module imports nothing of the
package (and no torch at run time), so any layer may import it.

The module (:class:`MultiSeedModule`, a LightningModule of ours or a user's; runtime-checked by
:func:`member_seeds_of`):

``member_seeds: list[int] | None``
    The S seeds, or None for an ordinary single-model module (ours with ``num_members = 1``).
``member_logger: MemberRunLogger | None``
    Writes member s's metrics into its own run (:class:`MemberRunLogger`, ours
    :class:`lightning_sig.members.loggers.MemberLogger`); None off rank 0 or before ``setup``.
``member_gradients() -> list[dict[str, list[Tensor]]]``
    Per member s: layer qualified name, as a single-network module names it
    (``net.features.0``), → that member's slice of the gradients of the layer's parameters.

Optional (:class:`MemberRowsModule`; a module without it, or with it set to None, gets the
per-member path above):

``member_gradient_rows(data: bool, layer_parameters=None) -> MemberGradientRows | None``
    Every member's flat gradient at once (:func:`lightning_sig.members.gradients.member_gradient_rows`):
    ``names``, ``sizes``, ``counts`` of ``GradientSnapshot.of_layers(member_gradients()[s])``,
    ``rows`` (S, N), row s bitwise ``flatten_gradients`` of member s's list, and ``data``: with
    ``data=True`` the (S, N) rows of the data-loss gradient g − ∇penalty (the
    ``penalty_gradients`` protocol, :mod:`lightning_sig.gradients.penalty`), else or without a
    penalty None. None when no parameter has a gradient. ``layer_parameters``: (layer name,
    parameter) pairs in model order that the caller has cached (the GradientQuantileCallback's,
    rebuilt at each epoch start), or None. The callback uses it for models of at most
    ``FLAT_MAX_NUMEL`` coordinates per member at steps without histograms (those read
    each member's tensors).

Beyond these names, the data-loss rows (``grad_data/*``) of a members module with
``penalty_gradients()`` are sliced from its parameters by
:func:`lightning_sig.members.gradients.member_data_layers`: every trainable parameter must
carry the member dimension first, (S, ...), as ``member_gradients`` assumes of ours.

``forward`` of our modules has two shapes by mode (kept: checkpoints, users' code and the
callbacks rely on both):

* S = 1 (``member_seeds`` None): images (N, 3, 32, 32) float → logits (N, 10).
* S > 1: images (S, N, 3, 32, 32) (member s sees x[s]) or (N, 3, 32, 32) (every member sees
  the same images, e.g. validation) → logits (S, N, 10), [s] member s's.

The stacked network (:class:`MemberNetwork`, ours
:class:`lightning_sig.members.networks.MemberConvNet`): ``num_members`` S, every parameter of
shape (S, ...) under the single network's name, and ``member_input(x)`` (the (S, N, C, H, W)
input checked, a shared (N, C, H, W) one expanded; the fused kernels call it). Ours also has
``member_state_dict(s)`` (member s's weights, loadable into a
:class:`~lightning_sig.SigmoidConvNet`), for users: the package itself never calls it.

A DataModule that trains members (ours: ``CIFAR10DataModule``) has ``member_seeds`` too (the
module sets it at ``setup`` when None): its training batches are then (S, B, ...) member batches.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Protocol, \
    Sequence, Tuple, runtime_checkable

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["DEFAULT_MEMBER_LOG_DIR", "MemberRunLogger", "MultiSeedModule", "MemberRowsModule",
           "MemberNetwork", "member_seeds_of", "member_gradient_rows_of"]

#: Where member s of our modules writes (``member_log_dir``): ``{log_dir}`` is the Lightning
#: logger's run directory.
DEFAULT_MEMBER_LOG_DIR = "{log_dir}/seed_{seed}"


class MemberRunLogger(Protocol):
    """``member_logger``: member s's metrics into member s's own run."""

    #: None, or S TensorBoard ``SummaryWriter`` s (for histograms and images).
    writers: Optional[list]

    def log(self, member: int, metrics: Mapping[str, float], step: int) -> None:
        """Scalars of member ``member`` (tag → float) at ``step``."""


@runtime_checkable
class MultiSeedModule(Protocol):
    """A module training S seeds at once; see this module's docstring for each attribute."""

    member_seeds: Optional[List[int]]
    member_logger: Optional[MemberRunLogger]

    def member_gradients(self) -> List[Dict[str, List[Tensor]]]:
        """Per member: layer name → gradients of that member's parameters of the layer."""


@runtime_checkable
class MemberRowsModule(MultiSeedModule, Protocol):
    """A :class:`MultiSeedModule` with the optional vectorised gradient read."""

    def member_gradient_rows(self, data: bool = False,
                             layer_parameters: Optional[Sequence[Tuple[str, Tensor]]] = None
                             ) -> Any:
        """Every member's flat gradient as a row of one (S, N) tensor (a
        ``MemberGradientRows``), or None when no parameter has a gradient."""


class MemberNetwork(Protocol):
    """S networks of one architecture stacked on dim 0, run as one."""

    num_members: int

    def member_input(self, x: Tensor) -> Tensor:
        """(S, N, C, H, W) checked, or (N, C, H, W) expanded to it (no copy)."""


def member_seeds_of(module: object) -> Optional[List[int]]:
    """The member seeds of a :class:`MultiSeedModule` with S ≥ 1 members; None for any other
    module (including ours with ``num_members = 1``, whose ``member_seeds`` is None).

    The ``Protocol`` check (~20 µs) runs only for a module whose ``member_seeds`` is set: for
    any other one the answer (None) costs an attribute read, as the callbacks ask at each
    logged step."""
    if not getattr(module, "member_seeds", None):
        return None
    if isinstance(module, MultiSeedModule):
        return list(module.member_seeds)
    return None


def member_gradient_rows_of(module: object) -> Optional[Callable[..., Any]]:
    """The bound ``member_gradient_rows`` of a module :func:`member_seeds_of` accepted, or None
    when it has none (or set it to None): the caller then reads ``member_gradients()``."""
    return getattr(module, "member_gradient_rows", None)
