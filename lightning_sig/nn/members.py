"""Old import path of the members networks, kept so that pickles made before they moved load.

Members mode now lives in :mod:`lightning_sig.members` (the networks in
:mod:`lightning_sig.members.networks`, the gradients in :mod:`lightning_sig.members.gradients`).
A pickle stores the defining module of every class in it, and a whole-module
``torch.save(module)`` of a ``num_members > 1`` module made before the move names
``lightning_sig.nn.members`` for :class:`MemberConvNet` and its stacked layers; ``torch.load``
finds them here. New code imports from :mod:`lightning_sig.members`; nothing in the package
imports this module.
"""
from __future__ import annotations

from lightning_sig.members.gradients import MemberGradientRows, member_gradient_rows, \
    member_layer_gradients
from lightning_sig.members.networks import MemberConvNet, _MemberActivation, _MemberConv2d, \
    _MemberFlatten, _MemberLinear, build_member_nets, check_member_trainer, member_l2_penalty, \
    member_losses, resolve_member_seeds

__all__ = ["resolve_member_seeds", "build_member_nets", "MemberConvNet", "member_losses",
           "member_l2_penalty", "member_layer_gradients", "MemberGradientRows",
           "member_gradient_rows", "check_member_trainer", "_MemberConv2d", "_MemberLinear",
           "_MemberActivation", "_MemberFlatten"]
