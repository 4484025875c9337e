"""Benchmark: what the paper's remedies cost per training step (Table 4 analog), and what the
step optimisations of lightning_sig bought.

Table 1: for each paper network (Tables 1-3), the time of one optimizer step (forward, CE
+ r/2·Σθ², backward, Adam) of tanh + α=2 + r=0.01 over plain tanh, and of relu + r=0.01 over plain
relu, with the module's own ``training_step`` (a non-logging step). Paper (TensorFlow, Table 4):
1.31 and 1.36; goal here ≤ 1.05.

Table 1 again with the previous step: α applied layer by layer on the activations, NCHW
convolutions, the l2 term as one reduction per parameter, Adam's default for-loop (the code
before the speed work).

Table 2 (Table 3 network, tanh, α=2, r=0.01): the current step against one change at a time —
NCHW convolutions instead of channels_last, α layer by layer instead of folded into the weights
(:func:`lightning_sig.nn.convnets.run_folded`), α folding and the l2 term as two autograd paths
instead of one node (:class:`lightning_sig.nn.folding.ScaleAndPenalize`), the l2 term as one
reduction per parameter, Adam's
default for-loop implementation instead of the fused one, Adam ``foreach``, one thread (when
more are set), and with ``--compile`` ``torch.compile`` of the loss (compiling takes about a
minute on 2 cores).

Table 3: one Adam step alone (random gradients): torch's CPU default for-loop, ``foreach``,
and ``fused`` (what :func:`lightning_sig.nn.optim.adam` picks where torch supports it).

Inputs: random images in [0, 1) (batch 32), the paper's init. Run:
``python benchmarks/bench_remedies.py [--reps 10] [--steps 20] [--threads N] [--compile]
[--skip-before]``.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time

import torch
import torch.nn.functional as F

from _common import add_common_arguments, apply_threads, format_table, print_header, \
    quiet_steps, random_batches, time_interleaved, training_step_fn

from lightning_sig import CombinedNet, LargeParamsNet, ManyLayersNet
from lightning_sig.nn.folding import run_folded, run_folded_penalized
from lightning_sig.nn.optim import adam

ARMS = {"tanh": dict(activation="tanh"),
        "tanh α=2": dict(activation="tanh", alpha=2.0),
        "tanh r=0.01": dict(activation="tanh", l2_strength=0.01),
        "tanh α=2 r=0.01": dict(activation="tanh", alpha=2.0, l2_strength=0.01),
        "relu": dict(activation="relu"),
        "relu r=0.01": dict(activation="relu", l2_strength=0.01)}
BASE = {"tanh α=2": "tanh", "tanh r=0.01": "tanh", "tanh α=2 r=0.01": "tanh", "relu r=0.01": "relu"}


def remedies_table(args, batches, before: bool = False) -> str:
    """Table 4 analog per network; ``before``: with the previous step (layer-by-layer α, NCHW,
    l2 per parameter, Adam for-loop) instead of the module's training_step."""
    rows = []
    for table, cls in enumerate((LargeParamsNet, ManyLayersNet, CombinedNet), start=1):
        variants = {}
        for arm, hparams in ARMS.items():
            torch.manual_seed(0)
            module = cls(**hparams).to(args.device)
            variants[arm] = (manual_step(module, batches, nchw=True, l2_stack=True, layerwise=True,
                                         optimizer=torch.optim.Adam(module.parameters(), lr=1e-3))
                             if before else training_step_fn(module, batches))
        times = time_interleaved(variants, args.reps, args.warmup, args.steps, args.device)
        title = "previous step" if before else "current training_step"
        rows.append(f"## {cls.__name__} (Table {table}), {title}\n\n"
                    + format_table(times, BASE, unit="ms/step"))
    return "\n\n".join(rows)


def manual_step(module, batches, nchw=False, l2_stack=False, optimizer=None, compiled=False,
                threads=None, layerwise=False, fused=True):
    """A step like ``training_step`` with one thing changed (see the module docstring);
    ``layerwise``: α applied layer by layer (ScaledActivation.forward) instead of folded;
    ``fused=False``: α folding and the l2 term as two autograd paths (one multiplication per
    scaled weight, a concatenation for the l2 term) instead of one ScaleAndPenalize node."""
    net, r = module.net, module.l2_strength
    params = module.penalized_parameters()
    optimizer = optimizer or adam(module.parameters(), module.lr)  # what the module uses

    def loss_fn(x, y):
        layers = [*net.features, *net.classifier]
        if fused and not (layerwise or l2_stack):  # what training_step does
            logits, penalty = (run_folded_penalized(layers, x, r) if nchw
                               else net.forward_penalized(x, r))
            return F.cross_entropy(logits, y) + penalty
        if layerwise:  # the previous forward: every layer's own forward, α on the activations
            x = x if nchw else x.contiguous(memory_format=torch.channels_last)
            logits = net.classifier(net.features(x))
        elif nchw:  # folded α, NCHW convolutions
            logits = run_folded(layers, x)
        else:
            logits = net(x)
        if l2_stack:  # the previous l2 code: one square-sum per parameter, then a stack
            penalty = 0.5 * r * torch.stack([p.square().sum() for p in params]).sum()
        else:
            penalty = 0.5 * r * torch.cat([p.reshape(-1) for p in params]).square().sum()
        return F.cross_entropy(logits, y) + penalty
    loss_fn = torch.compile(loss_fn) if compiled else loss_fn
    state = {"i": 0, "threads": torch.get_num_threads()}

    def step():
        x, y = batches[state["i"] % len(batches)]
        state["i"] += 1
        if threads:
            torch.set_num_threads(threads)
        optimizer.zero_grad()
        loss_fn(x, y).backward()
        optimizer.step()
        if threads:
            torch.set_num_threads(state["threads"])
    return step


def optimisation_table(args, batches) -> str:
    def module():
        torch.manual_seed(0)
        return CombinedNet(activation="tanh", alpha=2.0, l2_strength=0.01).to(args.device)

    def torch_adam(m, **kw):
        return torch.optim.Adam(m.parameters(), lr=1e-3, **kw)
    m = [module() for _ in range(11)]
    variants = {"current (training_step)": training_step_fn(m[0], batches),
                "current, hand-written step": manual_step(m[1], batches),
                "NCHW convolutions (before)": manual_step(m[2], batches, nchw=True),
                "α layer by layer (before)": manual_step(m[6], batches, layerwise=True),
                "l2 per parameter (before)": manual_step(m[3], batches, l2_stack=True),
                "α and l2 as two autograd paths (before)": manual_step(m[8], batches, fused=False),
                "Adam for-loop (before)": manual_step(m[4], batches, optimizer=torch_adam(m[4])),
                "previous step (all four before)": manual_step(
                    m[9], batches, nchw=True, l2_stack=True, layerwise=True,
                    optimizer=torch_adam(m[9])),
                "Adam foreach=True": manual_step(m[5], batches,
                                                 optimizer=torch_adam(m[5], foreach=True))}
    if torch.get_num_threads() > 1:
        variants["1 thread"] = manual_step(m[10], batches, threads=1)
    if args.compile:
        variants["torch.compile(loss)"] = manual_step(m[7], batches, compiled=True)
        start = time.perf_counter()
        variants["torch.compile(loss)"]()  # compile outside the timing
        print(f"torch.compile: first step (compilation) took {time.perf_counter() - start:.1f} s\n")
    times = time_interleaved(variants, args.reps, args.warmup, args.steps, args.device)
    base = "current, hand-written step"
    return ("## Step variants (Table 3 network, tanh, α=2, r=0.01)\n\n"
            + format_table(times, {k: base for k in variants if k != base}, unit="ms/step"))


def adam_table(args) -> str:
    """One Adam step alone (random gradients) of the Table 3 network: implementations."""
    variants = {}
    for name, kwargs in (("for-loop (torch's CPU default)", {}), ("foreach", {"foreach": True}),
                         ("fused (ours, nn.optim.adam)", None)):
        module = CombinedNet().to(args.device)
        for p in module.parameters():
            p.grad = torch.randn_like(p)
        optimizer = (adam(module.parameters(), 1e-3) if kwargs is None
                     else torch.optim.Adam(module.parameters(), lr=1e-3, **kwargs))
        variants[name] = optimizer.step
    times = time_interleaved(variants, args.reps, 20, 100, args.device)
    base = "for-loop (torch's CPU default)"
    return ("## Adam step alone (Table 3 network, 1,130 parameters in 20 tensors)\n\n"
            + format_table(times, {k: base for k in variants if k != base}, unit="µs",
                           scale=1e6))


def main(argv=None) -> None:
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]),
                                  reps=10)
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per timed block")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--skip-before", action="store_true",
                        help="skip the Table 4 analog with the previous step")
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    quiet_steps()
    print_header("Remedies overhead and step optimisations",
                 "python benchmarks/bench_remedies.py " + shlex.join(sys.argv[1:]), args.device)
    batches = random_batches(8, device=args.device)
    print(remedies_table(args, batches))
    print()
    if not args.skip_before:
        print(remedies_table(args, batches, before=True))
        print()
    print(optimisation_table(args, batches))
    print()
    print(adam_table(args))


if __name__ == "__main__":
    main()
