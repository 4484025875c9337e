"""Many seeds in one process: S independent copies ("members") of a paper network, trained at once.

Why: the paper's study is 25 seeds of tiny networks (Sec. 3); one such network leaves a GPU, and
much of a CPU step, idle. Here member s is a full copy of :class:`~lightning_sig.SigmoidConvNet`
with its own initialisation (seed s), its own data order, loss, l2 term r/2·Σθ_s² (Sec. 2.2) and
Adam state. Its convolutions run as one grouped convolution (``groups = S``) and its dense layers
as one batched matmul; every parameter carries a leading member dimension, under the same name as
in the single network (``features.0.weight`` of shape (S, 3, 3, 3, 3)). The objective is the sum
Σ_s loss_s, so ∂/∂θ_s is member s's own gradient, and Adam, being coordinatewise, gives member s
exactly the update of a separate run (up to float rounding of the grouped kernels). Global-norm
gradient clipping would couple the members and is refused (:func:`check_member_trainer`).

Definition (what "the same as a separate run with seed s" means, tested in tests/test_members.py):
member s is initialised by :func:`~lightning_sig.nn.convnets.build_initialised_net` with seed
``seed_s`` (what ``seed_everything(seed_s)`` then ``CombinedNet(...)`` does: the init stream
derived from (seed_s, "init"), :mod:`lightning_sig.seeds`), and its epoch-e training order is
:func:`~lightning_sig.seeds.epoch_order` of ``seed_s`` (the DataModule's default
``shuffle_seed`` after ``seed_everything(seed_s)``). Default seeds: base, base+1, …, base+S−1,
base = ``torch.initial_seed()`` when the module is built (the ``seed_everything`` value).
Per-member metrics are written by :class:`~lightning_sig.members.loggers.MemberLogger`; the
mode as a whole: :mod:`lightning_sig.members`.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_sig.nn.activations import ScaledActivation, scaled_activation
from lightning_sig.nn.convnets import ConvNetSpec, SigmoidConvNet, build_initialised_net, \
    preferred_memory_format, run_folded

__all__ = ["resolve_member_seeds", "build_member_nets", "MemberConvNet", "member_losses",
           "member_l2_penalty", "check_member_trainer"]


def resolve_member_seeds(num_members: int, member_seeds: Optional[Sequence[int]],
                         base_seed: Optional[int] = None) -> Optional[List[int]]:
    """The members' seeds: ``member_seeds`` checked, or base, base+1, …; None when S = 1.

    Args:
        num_members: S ≥ 1.
        member_seeds: S distinct integers ≥ 0, or None for ``base_seed + s`` (s = 0…S−1).
        base_seed: default ``torch.initial_seed()`` (the ``seed_everything`` value).

    Raises:
        ValueError: S not an integer ≥ 1; seeds given with S = 1, of the wrong length, negative,
            repeated or not integers.
    """
    if isinstance(num_members, bool) or not isinstance(num_members, int) or num_members < 1:
        raise ValueError(f"num_members must be an integer >= 1, got {num_members!r}.")
    if num_members == 1:
        if member_seeds is not None:
            raise ValueError(f"member_seeds={list(member_seeds)!r} needs num_members > 1; one "
                             f"network takes its seed from seed_everything.")
        return None
    if member_seeds is None:
        base = torch.initial_seed() if base_seed is None else base_seed
        return [(base + s) % 2**62 for s in range(num_members)]
    seeds = list(member_seeds)
    ok = all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    if not ok or len(seeds) != num_members or len(set(seeds)) != len(seeds):
        raise ValueError(f"member_seeds must be {num_members} distinct integers >= 0 "
                         f"(num_members={num_members}), got {seeds!r}.")
    return seeds


def build_member_nets(spec: ConvNetSpec, activation: str, alpha: float, learnable_alpha: bool,
                      init: str, init_scale: float, zero_bias: bool,
                      seeds: Sequence[int]) -> List[SigmoidConvNet]:
    """One initialised :class:`SigmoidConvNet` per seed, each as
    :func:`~lightning_sig.nn.convnets.build_initialised_net` builds a separate run's."""
    return [build_initialised_net(spec, activation, alpha, learnable_alpha, init, init_scale,
                                  zero_bias, seed) for seed in seeds]


def _stacked(tensors: Sequence[Tensor]) -> nn.Parameter:
    return nn.Parameter(torch.stack([t.detach() for t in tensors]))


def _scaled(p: Optional[Tensor], scale) -> Optional[Tensor]:
    """p (S, ...) times a float or a per-member (S,) scale; None scale = unscaled."""
    if p is None or scale is None:
        return p
    if isinstance(scale, Tensor) and scale.dim() == 1:
        scale = scale.view(-1, *([1] * (p.dim() - 1)))
    return p * scale


class _MemberConv2d(nn.Module):
    """S convolutions as one grouped convolution on the (B, S·C, H, W) layout."""

    def __init__(self, convs: Sequence[nn.Conv2d]) -> None:
        super().__init__()
        c = convs[0]
        self.stride, self.padding, self.dilation = c.stride, c.padding, c.dilation
        self.weight = _stacked([m.weight for m in convs])  # (S, O, C, kh, kw)
        self.bias = _stacked([m.bias for m in convs]) if c.bias is not None else None  # (S, O)

    def scaled_forward(self, h: Tensor, weight_scale=None, bias_scale=None) -> Tensor:
        """(B, S·C, H, W) → (B, S·O, H, W); weights/biases multiplied by the optional (S,)
        scales first (α folded into the weights, see ``models.py``)."""
        w = _scaled(self.weight, weight_scale).flatten(0, 1)  # (S·O, C, kh, kw)
        b = _scaled(self.bias, bias_scale)
        return F.conv2d(h, w, None if b is None else b.flatten(), self.stride, self.padding,
                        self.dilation, groups=self.weight.shape[0])

    def forward(self, h: Tensor) -> Tensor:
        return self.scaled_forward(h)


class _MemberLinear(nn.Module):
    """S linear layers as one batched matmul on (S, B, F)."""

    def __init__(self, linears: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.weight = _stacked([m.weight for m in linears])  # (S, out, in)
        self.bias = _stacked([m.bias for m in linears]) if linears[0].bias is not None else None

    def scaled_forward(self, h: Tensor, weight_scale=None, bias_scale=None) -> Tensor:
        """(S, B, in) → (S, B, out); weights/biases multiplied by the optional (S,) scales."""
        w, b = _scaled(self.weight, weight_scale), _scaled(self.bias, bias_scale)
        if b is None:
            return torch.bmm(h, w.transpose(1, 2))
        return torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))

    def forward(self, h: Tensor) -> Tensor:
        return self.scaled_forward(h)


class _MemberActivation(nn.Module):
    """f_α(z) = α·f(z/α) (eq. 1) with one α per member when α is learnable (``log_alpha`` (S,))."""

    def __init__(self, acts: Sequence[ScaledActivation]) -> None:
        super().__init__()
        self.family, self.learnable_alpha = acts[0].family, acts[0].learnable_alpha
        if self.learnable_alpha:
            self.log_alpha = _stacked([a.log_alpha for a in acts])  # (S,)
        else:
            self._alpha = acts[0].alpha

    def alpha_value(self) -> float | Tensor:
        """α as :meth:`ScaledActivation.alpha_value`: a float, or the (S,) tensor exp(log_alpha)."""
        return self.log_alpha.exp() if self.learnable_alpha else self._alpha

    def forward(self, h: Tensor) -> Tensor:
        alpha = self.alpha_value()
        if not self.learnable_alpha:
            return scaled_activation(h, self.family, alpha)
        if h.dim() == 3:  # dense layout (S, B, F)
            return scaled_activation(h, self.family, alpha.view(-1, 1, 1))
        grouped = h.unflatten(1, (alpha.shape[0], -1))  # (B, S, C, H, W)
        return scaled_activation(grouped, self.family, alpha.view(1, -1, 1, 1, 1)).flatten(1, 2)


class _MemberFlatten(nn.Module):
    """(B, S·C, h, w) → (S, B, C·h·w), each member flattened in nn.Flatten's (C, h, w) order."""

    commutes_with_scale = True  # a pending α passes through (see models.run_folded)

    def __init__(self, num_members: int) -> None:
        super().__init__()
        self.num_members = num_members

    def forward(self, h: Tensor) -> Tensor:
        return h.reshape(h.shape[0], self.num_members, -1).transpose(0, 1)


def _member_layer(layers: Sequence[nn.Module], num_members: int) -> nn.Module:
    first = layers[0]
    if isinstance(first, nn.Conv2d):
        return _MemberConv2d(layers)
    if isinstance(first, nn.Linear):
        return _MemberLinear(layers)
    if isinstance(first, ScaledActivation):
        return _MemberActivation(layers)
    if isinstance(first, nn.Flatten):
        return _MemberFlatten(num_members)
    if isinstance(first, nn.MaxPool2d):  # channelwise: the grouped layout is fine as it is
        return first
    raise ValueError(f"MemberConvNet cannot stack a {type(first).__name__} layer (valid: Conv2d, "
                     f"Linear, ScaledActivation, Flatten, MaxPool2d).")


class MemberConvNet(nn.Module):
    """S copies of a :class:`SigmoidConvNet` with stacked parameters, run as one network.

    Built from S initialised networks of one architecture (:func:`build_member_nets`).
    Parameters keep the single network's names with a leading member dimension, so
    :meth:`member_state_dict` (s) loads into a :class:`SigmoidConvNet`.

    Shape:
        input (S, B, 3, H, W) float (member s sees x[s]) or (B, 3, H, W) (all members see the
        same images, e.g. validation); output (S, B, num_classes) logits.

    Raises:
        ValueError: fewer than 2 networks, or a layer type it cannot stack (names it).
    """

    def __init__(self, nets: Sequence[SigmoidConvNet]) -> None:
        super().__init__()
        if len(nets) < 2:
            raise ValueError(f"MemberConvNet needs >= 2 networks, got {len(nets)}.")
        self.spec, self.num_members = nets[0].spec, len(nets)
        for part in ("features", "classifier"):
            stacked = [_member_layer([getattr(n, part)[i] for n in nets], len(nets))
                       for i in range(len(getattr(nets[0], part)))]
            setattr(self, part, nn.Sequential(*stacked))

    def member_input(self, x: Tensor) -> Tensor:
        """(S, B, C, H, W), or (B, C, H, W) shared by all members (expanded, no copy), checked.

        Raises:
            ValueError: another shape (names it and the one expected).
        """
        s = self.num_members
        if x.dim() == 4:
            x = x.unsqueeze(0).expand(s, *x.shape)
        if x.dim() != 5 or x.shape[0] != s:
            raise ValueError(f"MemberConvNet with {s} members expects input (S={s}, B, C, H, W) "
                             f"or (B, C, H, W), got shape {tuple(x.shape)}.")
        return x

    def forward(self, x: Tensor) -> Tensor:
        s = self.num_members
        x = self.member_input(x)
        _, b, c, height, width = x.shape
        # (S, B, C, H, W) -> (B, S·C, H, W): a view for the DataModule's member batches (memory
        # (B, S, C, H, W)); channels_last then takes one NCHW -> NHWC copy (2× faster per step
        # than one strided permute-copy from that layout, measured for 5 members)
        h = x.transpose(0, 1).reshape(b, s * c, height, width)
        if preferred_memory_format(x) == torch.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        return run_folded([*self.features, *self.classifier], h)  # α folded into the weights

    def member_state_dict(self, member: int) -> Dict[str, Tensor]:
        """State dict of member ``member`` (0-based), loadable into a :class:`SigmoidConvNet`."""
        if not 0 <= member < self.num_members:
            raise ValueError(f"member must be in 0..{self.num_members - 1}, got {member!r}.")
        return {k: v[member].detach().clone() for k, v in self.state_dict().items()}


def member_losses(logits: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy of each member: logits (S, B, K), labels (S, B) → (S,) nats."""
    per_sample = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
    return per_sample.view(y.shape).mean(dim=1)


def member_l2_penalty(params: Sequence[Tensor], r: float) -> Tensor:
    """Each member's l2 term r/2·Σθ_s² (Sec. 2.2): params with leading dim S → (S,)."""
    if r == 0:
        return torch.zeros(params[0].shape[0], device=params[0].device)
    flat = torch.cat([p.flatten(1) for p in params], dim=1)  # (S, P)
    return 0.5 * r * flat.square().sum(dim=1)


def check_member_trainer(trainer, num_members: int) -> None:
    """Refuse Trainer settings that would couple the members or that are not supported.

    Raises:
        ValueError: global-norm gradient clipping (``gradient_clip_val`` with algorithm "norm":
            one norm over all members would scale every member's update by the others'
            gradients; ``gradient_clip_algorithm="value"`` is coordinatewise and allowed), or
            more than one process (members and DDP are not combined: use one or the other).
    """
    clip = getattr(trainer, "gradient_clip_val", None)
    algorithm = getattr(trainer, "gradient_clip_algorithm", None)
    if clip and str(getattr(algorithm, "value", algorithm) or "norm") == "norm":
        raise ValueError(f"gradient_clip_val={clip} with gradient_clip_algorithm='norm' would "
                         f"couple the {num_members} members (one norm over all of them); use "
                         f"num_members=1, or gradient_clip_algorithm='value'.")
    if getattr(trainer, "world_size", 1) > 1:
        raise ValueError(f"num_members={num_members} is not supported with {trainer.world_size} "
                         f"processes (DDP); use num_members=1 with DDP, or one process.")
