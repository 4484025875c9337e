"""Figure for the Sec. 2 toy model: |∂ℓ/∂θ^k| / |d| against the layer index k.

Why: it shows both sources of vanishing gradients and the α-remedy at a glance. With
|x| = θ^i = 1.5 (the setting of Theorem 2) and α = 1, the partials shrink geometrically from the
output layer (k = l) back to the input layer (k = 1), below the bound 2^{−(l−k+1)}; as α grows
the tanh chain approaches the linear network and the partials approach 1.5^{l−1}·|x| for every k.
The logistic function behaves differently (f(0) = 1/2; see docs/toy_model.md).

Usage:
    python -m lightning_sig.toy.figure --out docs/figures/toy_gradients.png
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from lightning_sig.toy import chain as toy  # noqa: E402

DEPTHS = (2, 5, 10, 20)
# "large" α must exceed the activations, ~1.5^l·|x| (≈ 5e3 at l = 20): α = 1e3 is not enough there.
ALPHAS = (1.0, 2.0, 4.0, 1e6)
FAMILIES = ("tanh", "sigmoid")
_TITLES = {"tanh": "tanh", "sigmoid": "logistic"}


def gradient_profile(depth: int, family: str, alpha: float, value: float = 1.5) -> torch.Tensor:
    """|∂ℓ/∂θ^k| / |d| = |∂g/∂θ^k| for k = 1..depth at x = θ^i = ``value`` (Theorem 2 setting).

    Returns: float64 tensor of shape (depth,). Raises: ValueError as :func:`toy.layer_outputs`.
    """
    theta = torch.full((depth,), float(value), dtype=torch.float64)
    return toy.output_gradient(theta, value, family, alpha).abs()


def _panel(ax, family: str, alpha: float, depths: Sequence[int], value: float) -> None:
    colors = plt.get_cmap("viridis")(torch.linspace(0, 0.9, len(depths)).tolist())
    for depth, color in zip(depths, colors):
        k = list(range(1, depth + 1))
        ax.plot(k, gradient_profile(depth, family, alpha, value).tolist(), "o-", ms=2.5,
                color=color, label=f"l = {depth}")
        if alpha == 1.0:
            ax.plot(k, [2.0 ** -(depth - j + 1) for j in k], ":", color=color, lw=1)
        elif family == "tanh" and alpha == max(ALPHAS):
            ax.axhline(value ** depth, ls=":", color=color, lw=1)
    ax.set_yscale("log")
    ax.set_title(f"{_TITLES[family]}, α = {alpha:g}", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(True, which="major", lw=0.3)


def draw(out: Path, depths: Sequence[int] = DEPTHS, alphas: Sequence[float] = ALPHAS,
         value: float = 1.5, dpi: int = 80) -> Path:
    """Draw the families × α grid of panels, one line per depth l, and save a PNG at ``out``.

    Dotted lines: the Theorem 2 bound 2^{−(l−k+1)} (α = 1 panels) and the limit 1.5^{l−1}·|x|
    (tanh, largest α). Returns ``out``; parent directories are created.
    """
    fig, axes = plt.subplots(len(FAMILIES), len(alphas), figsize=(3.0 * len(alphas), 5.6),
                             sharex=True, squeeze=False)
    for row, family in enumerate(FAMILIES):
        for col, alpha in enumerate(alphas):
            _panel(axes[row][col], family, float(alpha), depths, value)
        axes[row][0].set_ylabel("|∂ℓ/∂θ$^k$| / |d|", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("layer k (1 = input side)", fontsize=8)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Toy chain, |x| = θ$^i$ = {value:g}; dotted: 2$^{{-(l-k+1)}}$ bound (α = 1), "
                 f"limit 1.5$^{{l-1}}$|x| (tanh, large α)", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> Path:
    """Command line: ``--out PATH.png`` (required), ``--value`` (default 1.5), ``--dpi`` (80).

    Returns the written path. Exits (argparse error) if ``--out`` does not end in .png.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output PNG path")
    parser.add_argument("--value", type=float, default=1.5, help="|x| = θ^i (default 1.5)")
    parser.add_argument("--dpi", type=int, default=80, help="PNG resolution (default 80)")
    args = parser.parse_args(argv)
    if args.out.suffix.lower() != ".png":
        parser.error(f"--out must end in .png, got {str(args.out)!r}")
    path = draw(args.out, value=args.value, dpi=args.dpi)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return path


if __name__ == "__main__":
    main()
