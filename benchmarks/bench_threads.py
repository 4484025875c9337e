"""Intra-op threads of the main job, on an idle machine and with another process busy on one core.

The main job is the README's command (``python train.py fit --config
configs/fig3_combined/tanh_reg_scaled.yaml``: Table 3 net, tanh, α = 2, r = 0.01, the config's
GradientQuantileCallback, validation), cut to ``--train-batches`` training and ``--val-batches``
validation batches of one epoch. Each run is a fresh process; its time is that of the CLI's
``main()`` (parsing, data loading, kernel load, fit, validation), its imports excluded. Thread
variants:

- ``default``: ``OMP_NUM_THREADS`` = torch's default count (the physical cores): what the command
  did before lightning_sig chose threads (an explicit count: the CLI keeps it);
- ``one``: ``OMP_NUM_THREADS=1``, the README's old advice;
- ``chosen``: no variable: the CLI's choice (:mod:`lightning_sig.thread_choice`).

Each runs ``idle`` and ``busy`` (a pure-Python busy loop pinned to the last core, started before
the run and killed after it). Repetitions interleave all six variants in rotated order; ratios
are medians of paired ratios (``benchmarks/_common.py``). Goals (issue 18): busy chosen / busy
one ≤ 1.10, idle chosen / idle default ≤ 1.10.

    python benchmarks/bench_threads.py --data-dir ../shared/cifar10 --reps 3
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "fig3_combined" / "tanh_reg_scaled.yaml"
BURNER = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"
MARK = "bench_threads main() seconds:"


def _child(cli_args: List[str]) -> None:
    """Run the CLI in this process and print how long ``main()`` took."""
    from lightning_sig.lightning.cli import main  # imported before the clock starts
    start = time.perf_counter()
    main(cli_args)
    print(f"{MARK} {time.perf_counter() - start:.4f}", flush=True)


def _cli_args(args: argparse.Namespace, out: str) -> List[str]:
    cli = ["fit", "--config", str(CONFIG), "--data.data_dir", args.data_dir,
           "--trainer.max_epochs", "1", "--trainer.limit_train_batches", str(args.train_batches),
           "--trainer.limit_val_batches", str(args.val_batches),
           "--trainer.enable_progress_bar", "false", "--trainer.enable_checkpointing", "false",
           "--trainer.logger.init_args.save_dir", out]
    if args.members > 1:
        cli += ["--model.init_args.num_members", str(args.members)]
    return cli


def _run(cli: List[str], threads: Optional[int], busy_core: Optional[int]) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    burner = None
    if busy_core is not None:
        burner = subprocess.Popen([sys.executable, "-c", BURNER, str(busy_core)])
    try:
        done = subprocess.run([sys.executable, __file__, "--child", *cli], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=1800)
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"run failed ({done.returncode}): {done.stdout[-2000:]}"
                           f"{done.stderr[-2000:]}")
    return float(lines[-1].split()[-1])


def _torch_default_threads() -> int:
    code = "import torch; print(torch.get_num_threads())"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return int(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "cifar10"))
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (default 3)")
    parser.add_argument("--train-batches", type=int, default=500,
                        help="training batches of the epoch (default 500 of 1563)")
    parser.add_argument("--val-batches", type=int, default=50,
                        help="validation batches (default 50 of 313)")
    parser.add_argument("--members", type=int, default=1, help="num_members (default 1)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import format_table, paired_ratio, print_header
    print_header("Intra-op threads of the main job, idle and with one core busy",
                 "python benchmarks/bench_threads.py " + shlex.join(sys.argv[1:]), "cpu")
    default, busy_core = _torch_default_threads(), max(os.sched_getaffinity(0))
    variants = {f"{state} {name}": (threads, core if state == "busy" else None)
                for state, core in (("idle", None), ("busy", busy_core))
                for name, threads in (("default", default), ("one", 1), ("chosen", None))}
    with tempfile.TemporaryDirectory(prefix="bench_threads_") as out:
        cli = _cli_args(args, out)
        times: Dict[str, List[float]] = {name: [] for name in variants}
        names = list(variants)
        for rep in range(args.reps):
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                times[name].append(_run(cli, *variants[name]))
                print(f"rep {rep + 1}/{args.reps} {name}: {times[name][-1]:.2f} s", flush=True)
    print(f"\nmain() of the CLI per run, seconds; default = {default} threads; busy = a busy loop "
          f"pinned to core {busy_core}; members {args.members}\n")
    baselines = {"idle one": "idle default", "idle chosen": "idle default",
                 "busy default": "busy one", "busy chosen": "busy one", "busy one": "idle one"}
    print(format_table(times, baselines, unit="s", scale=1.0))
    print(f"\ngoals: busy chosen / busy one = {paired_ratio(times, 'busy chosen', 'busy one'):.3f}"
          f" (<= 1.10); idle chosen / idle default = "
          f"{paired_ratio(times, 'idle chosen', 'idle default'):.3f} (<= 1.10)")
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        main()
