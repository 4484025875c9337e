"""lightning_sig: sigmoid-type networks without vanishing gradients, in PyTorch Lightning.

Reference implementation of Ven & Lederer, "Regularization and Reparameterization Avoid
Vanishing Gradients in Sigmoid-Type Networks" (arXiv 2106.02260): α-scaled activations
(eq. 1), the paper's CIFAR-10 networks with the explicit l2 term r/2·Σθ² (Sec. 2.2), a
CIFAR-10 DataModule and a gradient-statistics callback.
"""
from lightning_sig.nn.activations import ACTIVATIONS, ScaledActivation, scaled_activation
from lightning_sig.lightning.data import CIFAR10DataModule
from lightning_sig.lightning.grad_callback import GradientQuantileCallback
from lightning_sig.nn.convnets import TABLE1, TABLE2, TABLE3, ConvNetSpec, SigmoidConvNet, init_parameters
from lightning_sig.lightning.modules import CombinedNet, LargeParamsNet, ManyLayersNet, SigmoidNetModule
from lightning_sig.lightning.nonfinite import NonFiniteLossGuard
from lightning_sig.lightning.saturation import SaturationMonitor

__all__ = [
    "ACTIVATIONS", "ScaledActivation", "scaled_activation", "CIFAR10DataModule", "ConvNetSpec",
    "GradientQuantileCallback",
    "SigmoidConvNet", "TABLE1", "TABLE2", "TABLE3", "init_parameters", "SigmoidNetModule",
    "LargeParamsNet", "ManyLayersNet", "CombinedNet", "NonFiniteLossGuard",
    "SaturationMonitor",
]
__version__ = "0.1.0"
