"""The paper's CIFAR-10 conv nets (Appendix A, Tables 1–3) as presets of one configurable class.

Every net is: ``blocks`` × (``convs_per_block`` × [3×3 "same" conv with ``channels`` channels →
activation]) → 2×2 max pooling after each block → flatten → hidden dense layers, each followed by
the activation → a 10-way linear output (logits; the softmax is in the loss). Pooling is linear
in the paper's sense: no activation follows it.

Reading of the tables (the conv rows of Tables 1–3 are garbled in the arXiv text): we take every
conv as 3 input → 3 output channels, 3×3 kernel, with bias (81 weights + 3 biases). This is the
only reading consistent with the dense rows: after three 2×2 poolings a 32×32 image is 4×4, and
the first dense layer has 48 = 3·4·4 inputs (Table 1: 392 = 48·8 + 8; Tables 2–3: 384 = 48·8
weights). Table 1 counts weights + biases, Tables 2–3 weights only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import torch
from torch import nn

from lightning_sig.nn.activations import ScaledActivation
from lightning_sig.nn.folding import run_folded, run_folded_penalized
from lightning_sig.seeds import derived_seed

__all__ = ["ConvNetSpec", "SigmoidConvNet", "TABLE1", "TABLE2", "TABLE3", "INIT_SCHEMES",
           "init_parameters", "build_initialised_net", "preferred_memory_format", "run_folded"]


@dataclass(frozen=True)
class ConvNetSpec:
    """Architecture of one paper network.

    Attributes:
        blocks: number of conv blocks, each ended by 2×2 max pooling.
        convs_per_block: 3×3 "same" convolutions per block.
        channels: channels of every convolution (input images have 3).
        hidden: widths of the hidden dense layers.
        num_classes: outputs (10 for CIFAR-10).
        image_size: input height = width in pixels (32 for CIFAR-10).
    """

    blocks: int
    convs_per_block: int
    channels: int
    hidden: Tuple[int, ...]
    num_classes: int = 10
    image_size: int = 32

    @property
    def flat_features(self) -> int:
        """Inputs of the first dense layer: channels · (image_size / 2^blocks)²."""
        return self.channels * (self.image_size >> self.blocks) ** 2


#: Table 1, large-parameters regime (Sec. 3.1): 3 blocks × 2 convs, dense 8, output 10.
TABLE1 = ConvNetSpec(blocks=3, convs_per_block=2, channels=3, hidden=(8,))
#: Table 2, many-layers regime (Sec. 3.2): 3 blocks × 3 convs, dense 8, 8, 8, 8, output 10.
TABLE2 = ConvNetSpec(blocks=3, convs_per_block=3, channels=3, hidden=(8, 8, 8, 8))
#: Table 3, combined regime (Sec. 3.3): 3 blocks × 2 convs, dense 8, 8, 8, output 10.
TABLE3 = ConvNetSpec(blocks=3, convs_per_block=2, channels=3, hidden=(8, 8, 8))


class SigmoidConvNet(nn.Module):
    """A plain conv net with one α-scaled activation layer after every conv and hidden dense layer.

    Shape:
        input (N, 3, image_size, image_size) float; output (N, num_classes) logits.

    Speed: ``forward`` runs the layers through :func:`run_folded` (α moved onto the small
    weights, the same function up to float rounding; bitwise the same for α a power of two), so
    the activation modules hold f and α but their own ``forward`` (and hooks on them) is not
    called. Call ``net.classifier(net.features(x))`` for the layer-by-layer path.

    """

    def __init__(self, spec: ConvNetSpec, activation: str = "tanh", alpha: float = 1.0,
                 learnable_alpha: bool = False) -> None:
        """The layers of ``spec``, one ScaledActivation after every conv and hidden dense layer.

        Args:
            spec: the architecture (:data:`TABLE1`, :data:`TABLE2`, :data:`TABLE3` or your own).
            activation: activation family, see :class:`~lightning_sig.ScaledActivation`.
            alpha: the scale α of eq. 1 (finite, > 0; default 1.0).
            learnable_alpha: one trainable α per activation layer.

        Raises:
            ValueError: from :class:`~lightning_sig.ScaledActivation` for a bad family or α.
        """
        super().__init__()
        self.spec = spec

        def act() -> ScaledActivation:
            return ScaledActivation(activation, alpha, learnable_alpha)

        layers: list[nn.Module] = []
        in_ch = 3
        for _ in range(spec.blocks):
            for _ in range(spec.convs_per_block):
                layers += [nn.Conv2d(in_ch, spec.channels, 3, padding=1), act()]
                in_ch = spec.channels
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        dense: list[nn.Module] = [nn.Flatten()]  # (N, C, H, W) -> (N, C·H·W)
        width = spec.flat_features
        for hidden in spec.hidden:
            dense += [nn.Linear(width, hidden), act()]
            width = hidden
        dense.append(nn.Linear(width, spec.num_classes))
        self.classifier = nn.Sequential(*dense)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and not _compiling():  # channels_last on CPU, see preferred_memory_format
            x = x.contiguous(memory_format=preferred_memory_format(x))
        return run_folded([*self.features, *self.classifier], x)

    def forward_penalized(self, x: torch.Tensor, r: float = 0.0
                          ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(self(x), r/2·Σθ²)``: (N, num_classes) logits and the 0-dim l2 term (Sec. 2.2) over
        every conv and linear weight and bias θ (not α), computed together so that each
        parameter gets one gradient (:func:`~lightning_sig.nn.folding.run_folded_penalized`; the
        training step of our modules). Like ``forward``, module hooks are not called."""
        if x.dim() == 4:
            x = x.contiguous(memory_format=preferred_memory_format(x))
        return run_folded_penalized([*self.features, *self.classifier], x, r)


def _compiling() -> bool:
    """True while torch.compile traces (it picks memory formats itself)."""
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(is_compiling()) if is_compiling is not None else False


def preferred_memory_format(x: torch.Tensor) -> torch.memory_format:
    """Memory format for the convolutions of these nets: ``channels_last`` for float32/bf16 on a
    CPU with oneDNN (mkldnn), else ``contiguous_format``.

    Measured (benchmarks/RESULTS.md): with 3 channels, oneDNN's channels_last convolution
    backward is much faster on CPU than the NCHW one (training step ×0.65). On GPUs it is not
    measured here, so the default layout is kept there (an assumption). Values agree with the
    NCHW path up to float rounding.
    """
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16) \
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled:
        return torch.channels_last
    return torch.contiguous_format


#: Initialisation schemes and the scale each one reads from ``init_scale``.
INIT_SCHEMES = {
    "uniform": "U[-init_scale, init_scale); paper Sec. 3.1/3.3 use init_scale=10",
    "normal": "N(0, init_scale²); paper Sec. 3.2 uses init_scale=0.05",
    "default": "PyTorch's default (Kaiming-uniform); init_scale unused",
    "he_normal": "He/Kaiming normal N(0, 2/fan_in) weights, zero biases (relu's usual init, "
                 "not the paper's); init_scale unused",
    "glorot_uniform": "Glorot/Xavier uniform U[-a, a), a = sqrt(6/(fan_in + fan_out)), zero "
                      "biases (Keras' default, tanh's usual init, not the paper's); init_scale unused",
}
#: schemes whose weights follow a fan rule and whose biases start at zero (the usual convention
#: of Keras and He et al.; an assumption for "their usual init", the paper uses neither)
_FAN_SCHEMES = {"he_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
                "glorot_uniform": nn.init.xavier_uniform_}


def init_parameters(model: nn.Module, scheme: str = "default", scale: float = 1.0,
                    zero_bias: bool = False) -> None:
    """Initialise the weights and biases of every conv and linear layer of ``model`` in place.

    The paper initialises "the parameters", so by default weights and biases alike; learnable α
    (``log_alpha``) is never touched.

    Args:
        model: any module; its ``nn.Conv2d`` and ``nn.Linear`` layers are initialised.
        scheme: ``"uniform"`` (U[−scale, scale)), ``"normal"`` (N(0, scale²)), ``"default"``
            (PyTorch's), ``"he_normal"`` or ``"glorot_uniform"`` (weights by fan rule, biases 0;
            not the paper's inits, used by the configs/beyond contest): see :data:`INIT_SCHEMES`.
        scale: half-width or standard deviation, a finite float > 0 (dimensionless); unused by
            the last three schemes.
        zero_bias: if True, biases are set to 0 instead (an option the paper does not use).

    Raises:
        ValueError: unknown ``scheme`` (lists the valid ones) or ``scale`` not finite and > 0.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"Unknown init scheme {scheme!r}; valid: {', '.join(INIT_SCHEMES)}.")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) \
            or scale <= 0:
        raise ValueError(f"init_scale must be a finite number > 0, got {scale!r}.")
    for layer in model.modules():
        if not isinstance(layer, (nn.Conv2d, nn.Linear)):
            continue
        if scheme == "default":
            layer.reset_parameters()
        elif scheme in _FAN_SCHEMES:
            _FAN_SCHEMES[scheme](layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        for p in (layer.weight, layer.bias):
            if p is None or scheme not in ("uniform", "normal"):
                continue
            with torch.no_grad():
                if scheme == "uniform":
                    p.uniform_(-scale, scale)
                else:
                    p.normal_(0.0, scale)
        if zero_bias and layer.bias is not None:
            nn.init.zeros_(layer.bias)


def build_initialised_net(spec: ConvNetSpec, activation: str, alpha: float, learnable_alpha: bool,
                          init: str, init_scale: float, zero_bias: bool, seed: int
                          ) -> SigmoidConvNet:
    """A :class:`SigmoidConvNet` built and initialised (:func:`init_parameters`) from the
    stream ``derived_seed(seed, "init")`` (:mod:`lightning_sig.seeds`): independent of the
    seed's data orders and of every other seed's streams. The global RNG state is restored
    afterwards, so building a net does not move it.

    Args:
        spec, activation, alpha, learnable_alpha: as :class:`SigmoidConvNet`.
        init, init_scale, zero_bias: as :func:`init_parameters`.
        seed: the run's (or member's) seed, an integer >= 0.

    Raises:
        ValueError: as :class:`SigmoidConvNet`, :func:`init_parameters` and
            :func:`~lightning_sig.seeds.derived_seed`.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(seed, "init"))
        net = SigmoidConvNet(spec, activation, alpha, learnable_alpha)
        init_parameters(net, init, init_scale, zero_bias)
    return net
