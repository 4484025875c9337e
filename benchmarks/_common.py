"""Shared timing for the benchmark scripts: interleaved repetitions, warm-up, medians, a table.

Why interleave: on a shared or thermally throttled machine the speed drifts over minutes. Each
repetition runs every variant once, in an order rotated from one repetition to the next, so
drift hits all variants alike; a ratio is then the median over repetitions of the *paired*
ratio t_variant / t_baseline of the same repetition, which cancels most of the drift.

Every script prints :func:`machine_description` first (CPU model, cores, torch threads, GPU,
versions, load average), then one table per measurement with absolute medians and ratios.
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

__all__ = ["add_common_arguments", "apply_threads", "machine_description", "synchronize",
           "time_interleaved", "start_fit_benchmark", "paired_ratio", "paired_ratio_interval",
           "format_table", "print_header", "random_batches",
           "training_step_fn", "quiet_steps", "collect_interleaved", "quiet_lightning",
           "fit_seconds_per_step", "cifar_datamodule", "DEFAULT_DATA_DIR",
           "print_ratios_over"]


def add_common_arguments(parser: argparse.ArgumentParser, reps: int = 7, warmup: int = 2,
                         data_dir: bool = False) -> argparse.ArgumentParser:
    """Add ``--reps``, ``--warmup``, ``--threads``, ``--device`` (and with ``data_dir``,
    ``--data-dir``: the CIFAR-10 folder, synthetic data when it is missing) to ``parser``."""
    if data_dir:
        parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                            help="CIFAR-10 folder (synthetic data when missing)")
    parser.add_argument("--reps", type=int, default=reps,
                        help=f"interleaved repetitions per variant (default {reps})")
    parser.add_argument("--warmup", type=int, default=warmup,
                        help=f"untimed warm-up calls per variant (default {warmup})")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's, = usable cores)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu or cuda (default: cuda when available)")
    return parser


def apply_threads(threads: Optional[int]) -> None:
    """``torch.set_num_threads(threads)`` when given (≥ 1)."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(device: str = "cpu") -> str:
    """One paragraph: CPU model and usable cores, torch threads, GPU (if used), versions, load."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    import pytorch_lightning as pl
    lines = [f"CPU: {_cpu_model()}, {cores} usable core(s); torch threads: "
             f"{torch.get_num_threads()}",
             f"torch {torch.__version__}, pytorch-lightning {pl.__version__}, "
             f"python {platform.python_version()}"]
    if str(device).startswith("cuda") and torch.cuda.is_available():
        lines.append(f"GPU: {torch.cuda.get_device_name(device)}")
    else:
        lines.append("GPU: none used (device=cpu)")
    if hasattr(os, "getloadavg"):
        lines.append("load average (1, 5, 15 min) at start: "
                     + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    return "\n".join(lines)


def print_header(title: str, command: str, device: str) -> None:
    """Print the benchmark's title, the command line and the machine."""
    print(f"# {title}\n\ncommand: {command}\n")
    print(machine_description(device))
    print()


def synchronize(device: str) -> None:
    """Wait for queued GPU work (no-op on CPU), so wall-clock times include it."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_interleaved(variants: Mapping[str, Callable[[], object]], reps: int, warmup: int,
                     calls: int = 1, device: str = "cpu") -> Dict[str, List[float]]:
    """Seconds per call of each variant, one entry per repetition.

    Args:
        variants: name → zero-argument callable (one unit of work, e.g. one training step).
        reps: repetitions; each times every variant once (order rotated per repetition).
        warmup: untimed calls of every variant before the first repetition.
        calls: calls per timed block; the block time / ``calls`` is one entry.
        device: synchronised before and after each block when it is a GPU.

    Returns:
        name → list of ``reps`` times in seconds per call.
    """
    names = list(variants)
    for name in names:
        for _ in range(warmup):
            variants[name]()
    synchronize(device)
    times: Dict[str, List[float]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            fn = variants[name]
            synchronize(device)
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            synchronize(device)
            times[name].append((time.perf_counter() - start) / calls)
    return times


def paired_ratio(times: Mapping[str, Sequence[float]], name: str, baseline: str) -> float:
    """Median over repetitions of t[name][i] / t[baseline][i] (drift-robust ratio)."""
    return statistics.median(a / b for a, b in zip(times[name], times[baseline]))


def paired_ratio_interval(times: Mapping[str, Sequence[float]], name: str, baseline: str,
                          level: float = 0.95) -> Optional[Tuple[float, float]]:
    """A distribution-free confidence interval, at least ``level``, of the median paired ratio
    (:func:`paired_ratio`): the order statistics r_(k) and r_(n+1−k) of the n sorted ratios,
    k the largest with 2·P(Bin(n, 1/2) ≤ k − 1) ≤ 1 − level (``scipy.stats.binom``; the
    sign-test interval of a median, no assumption on the ratios' distribution). None when n is
    too small for ``level`` (n ≤ 5 at 95 %). E.g. n = 11: r_(2)–r_(10), coverage 98.8 %."""
    from scipy.stats import binom
    ratios = sorted(a / b for a, b in zip(times[name], times[baseline]))
    n, tail = len(ratios), (1.0 - level) / 2
    j = int(binom.ppf(tail, n, 0.5))  # smallest j with P(X ≤ j) ≥ tail
    if binom.cdf(j, n, 0.5) > tail:
        j -= 1
    return None if j < 0 else (ratios[j], ratios[n - 1 - j])


def _iqr(values: Sequence[float]) -> Tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def print_ratios_over(times: Mapping[str, Sequence[float]], baseline: str,
                      unit: str = "ms/step") -> None:
    """Print :func:`format_table` with every variant's ratio over ``baseline`` and its 95 %
    confidence interval (:func:`paired_ratio_interval`), then the load average at the end (the
    fit benchmarks' closing lines)."""
    intervals = {k: paired_ratio_interval(times, k, baseline) for k in times if k != baseline}
    extra = {k: "–".join(f"{x:.3f}" for x in ci) for k, ci in intervals.items() if ci}
    print(format_table(times, {k: baseline for k in times if k != baseline}, unit=unit,
                       extra=extra, extra_name="ratio 95 % CI"))
    if hasattr(os, "getloadavg"):
        print("\nload average (1, 5, 15 min) at the end: "
              + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


def format_table(times: Mapping[str, Sequence[float]], baselines: Mapping[str, Optional[str]],
                 unit: str = "ms", scale: float = 1e3, extra: Optional[Mapping[str, str]] = None,
                 extra_name: str = "") -> str:
    """A markdown table: variant, median, interquartile range, baseline and paired ratio.

    Args:
        times: as returned by :func:`time_interleaved`.
        baselines: variant → name of its baseline (None: no ratio).
        unit, scale: unit label and the factor from seconds.
        extra: optional variant → text of an additional column named ``extra_name``.
    """
    head = f"| variant | median {unit} | IQR {unit} | ratio | vs |"
    rule = "|---|---:|---:|---:|---|"
    if extra is not None:
        head, rule = head + f" {extra_name} |", rule + "---:|"
    rows = [head, rule]
    for name, values in times.items():
        low, high = _iqr(values)
        base = baselines.get(name)
        ratio = f"{paired_ratio(times, name, base):.3f}" if base else ""
        row = (f"| {name} | {statistics.median(values) * scale:.3f} | "
               f"{low * scale:.3f}–{high * scale:.3f} | {ratio} | {base or ''} |")
        if extra is not None:
            row += f" {extra.get(name, '')} |"
        rows.append(row)
    return "\n".join(rows)


def random_batches(count: int, batch_size: int = 32, members: Optional[int] = None,
                   seed: int = 0, device: str = "cpu") -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """``count`` CIFAR-shaped batches: images uniform in [0, 1) (B, 3, 32, 32) float32 and labels
    (B,) int64, or (S, B, ...) with ``members = S``."""
    g = torch.Generator().manual_seed(seed)
    lead = (batch_size,) if members is None else (members, batch_size)
    return [(torch.rand(*lead, 3, 32, 32, generator=g).to(device),
             torch.randint(0, 10, lead, generator=g).to(device)) for _ in range(count)]


def training_step_fn(module, batches, optimizer=None) -> Callable[[], None]:
    """One optimizer step of ``module`` per call (its own ``training_step``, cycling through
    ``batches``): zero_grad, training_step, backward, Adam step. Call :func:`quiet_steps` first so
    the step is a non-logging one (49 of 50 at Lightning's default interval)."""
    optimizer = optimizer or module.configure_optimizers()
    state = {"i": 0}

    def step() -> None:
        batch = batches[state["i"] % len(batches)]
        state["i"] += 1
        optimizer.zero_grad()
        module.training_step(batch, state["i"]).backward()
        optimizer.step()
    return step


def quiet_steps() -> None:
    """Make our modules' training_step treat every step as a non-logging step (no Trainer here)."""
    import lightning_sig.lightning.modules as modules
    if not hasattr(modules, "training_batch_logs_now"):  # renamed: the patch would do nothing
        raise AttributeError("quiet_steps: lightning_sig.lightning.modules has no "
                             "training_batch_logs_now to patch")
    modules.training_batch_logs_now = lambda trainer: False


def collect_interleaved(variants: Mapping[str, Callable[[], float]],
                        reps: int) -> Dict[str, List[float]]:
    """Like :func:`time_interleaved` for variants that time themselves: each call returns its
    own seconds per unit (e.g. per step of a Trainer.fit, setup excluded)."""
    names = list(variants)
    out: Dict[str, List[float]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            out[name].append(variants[name]())
    return out


def start_fit_benchmark(args: argparse.Namespace, title: str, script: str,
                        min_warmup: int = 10) -> None:
    """Common start of the ``Trainer.fit`` benchmarks: at least ``min_warmup`` untimed steps,
    ``--threads``, quiet Lightning, and the header with the command line of ``script``."""
    args.warmup = max(args.warmup, min_warmup)
    apply_threads(args.threads)
    quiet_lightning()
    print_header(title, f"python benchmarks/{script} " + shlex.join(sys.argv[1:]), args.device)


def quiet_lightning() -> None:
    """Silence Lightning's per-fit info lines and warnings (they would flood the tables)."""
    import logging
    import warnings
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def fit_seconds_per_step(module, datamodule, steps: int, warmup: int, callbacks: Sequence = (),
                         device: str = "cpu", **trainer_kwargs) -> float:
    """Wall seconds per training step of ``Trainer.fit`` (``max_steps=steps``), timed from the
    start of step ``warmup`` to the end of the last step: Trainer and data setup excluded,
    everything Lightning does per step (data fetching, hooks, logging) included. No validation,
    no checkpoints; logger and progress bar as given in ``trainer_kwargs``."""
    import pytorch_lightning as pl

    class StepTimer(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == warmup and not hasattr(self, "start"):
                synchronize(device)
                self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            synchronize(device)
            self.end, self.steps = time.perf_counter(), trainer.global_step - warmup

    timer = StepTimer()
    trainer_kwargs.setdefault("logger", False)
    trainer_kwargs.setdefault("enable_progress_bar", False)
    trainer = pl.Trainer(max_steps=steps, callbacks=[timer, *callbacks], num_sanity_val_steps=0,
                         limit_val_batches=0, enable_checkpointing=False,
                         enable_model_summary=False, devices=1,
                         accelerator="gpu" if str(device).startswith("cuda") else "cpu",
                         **trainer_kwargs)
    trainer.fit(module, datamodule=datamodule)
    return (timer.end - timer.start) / timer.steps


def cifar_datamodule(data_dir: Optional[str], batch_size: int = 32, **kwargs):
    """Our CIFAR10DataModule on ``data_dir`` (real CIFAR-10) if it holds the batches, else on
    synthetic batches in the official format (5 × 2000 training images) in a temporary folder.
    Returns ``(datamodule (set up), description)``."""
    import tempfile
    from lightning_sig import CIFAR10DataModule
    from lightning_sig.lightning.data_files import TEST_FILES, TRAIN_FILES, missing_files, write_batches
    if data_dir and not missing_files(data_dir, TRAIN_FILES + TEST_FILES):
        what = f"real CIFAR-10 from {data_dir}"
    else:
        data_dir = os.path.join(tempfile.mkdtemp(prefix="bench_cifar_"), "cifar")
        write_batches(data_dir, n_per_batch=2000, seed=0)
        what = "synthetic CIFAR-format data (10,000 training images)"
    dm = CIFAR10DataModule(data_dir, batch_size=batch_size, **kwargs)
    dm.setup("fit")
    return dm, what


#: The repository's shared copy of CIFAR-10 (used when present).
DEFAULT_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                                "cifar10")
