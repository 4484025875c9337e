"""The many-seeds ("members") interface: what a module that trains S seeds at once provides.

Our LightningModules with ``num_members = S > 1`` hold S independent networks as one
(:class:`~lightning_sig.nn.members.MemberConvNet`): member s is the run a separate process would
make with ``seed_everything(member_seeds[s])``. A callback or logger that would otherwise treat
the module as one model asks :func:`member_seeds_of` and, if it gets seeds, handles each member
as its own run. Any user module can implement the same three names to get that treatment.

The interface (a ``typing.Protocol``, checked at run time by :func:`member_seeds_of`):

``member_seeds: list[int] | None``
    The S seeds, or None for an ordinary single-model module.
``member_logger``
    None, or an object with ``log(member, metrics: dict[str, float], step)`` (scalars of member
    s into its own run) and ``writers`` (None, or S ``SummaryWriter`` s, for histograms): see
    :class:`lightning_sig.lightning.member_logging.MemberLogger`.
``member_gradients() -> list[dict[str, list[Tensor]]]``
    Per member s: layer qualified name, as a single-network module names it
    (``net.features.0``), → that member's slice of the gradients of the layer's parameters.

Optional (a module without it gets the per-member path above):

``member_gradient_rows(data: bool, layer_parameters=None) -> MemberGradientRows | None``
    Every member's flat gradient at once (:func:`lightning_sig.nn.members.member_gradient_rows`):
    ``names``, ``sizes``, ``counts`` of ``GradientSnapshot.of_layers(member_gradients()[s])``,
    ``rows`` (S, N), row s bitwise ``flatten_gradients`` of member s's list, and ``data``: with
    ``data=True`` the (S, N) rows of the data-loss gradient g − ∇penalty (the
    ``penalty_gradients`` protocol, :mod:`lightning_sig.gradients.penalty`), else or without a
    penalty None. None when no parameter has a gradient. ``layer_parameters``: (layer name,
    parameter) pairs in model order that the caller has cached (the GradientQuantileCallback's,
    rebuilt at each epoch start), or None. The callback uses it for models of at most
    ``FLAT_MAX_NUMEL`` coordinates per member at steps without histograms (those read
    each member's tensors).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Protocol, runtime_checkable

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["MultiSeedModule", "member_seeds_of", "DEFAULT_MEMBER_LOG_DIR"]

#: Where member s of our modules writes (``member_log_dir``): ``{log_dir}`` is the Lightning
#: logger's run directory.
DEFAULT_MEMBER_LOG_DIR = "{log_dir}/seed_{seed}"


@runtime_checkable
class MultiSeedModule(Protocol):
    """A module training S seeds at once; see this module's docstring for each attribute."""

    member_seeds: Optional[List[int]]
    member_logger: Any

    def member_gradients(self) -> List[Dict[str, List[Tensor]]]:
        """Per member: layer name → gradients of that member's parameters of the layer."""


def member_seeds_of(module: object) -> Optional[List[int]]:
    """The member seeds of a :class:`MultiSeedModule` with S ≥ 1 members; None for any other
    module (including ours with ``num_members = 1``, whose ``member_seeds`` is None)."""
    if isinstance(module, MultiSeedModule) and module.member_seeds:
        return list(module.member_seeds)
    return None
