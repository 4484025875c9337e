"""Screenshots of the TensorBoard dashboard of a short run of the main job's config.

Trains ``configs/fig3_combined/tanh_reg_scaled.yaml`` (the main job: Table 3 net, tanh, α = 2,
r = 0.01, with the GradientQuantileCallback and the SaturationMonitor of the paper configs) for
``--steps`` optimizer steps (real CIFAR-10 from ``--data-dir`` when it is there, else synthetic
data in the CIFAR format), starts ``tensorboard`` on the run, opens it in headless Chromium
(``--headless --screenshot``, no driver needed) and saves one PNG per tab under ``--out``:

- ``dashboard_custom_scalars.png``: the custom-scalars tab, the bands of |g| on a log scale;
- ``dashboard_time_series.png``: the Time Series tab as it opens;
- ``dashboard_scalars.png``: the Scalars tab as it opens.

Needs ``chromium`` (``apt-get install -y chromium``) and the ``tensorboard`` command. Run from
the repository root: ``python docs/dashboard_screenshots.py [--steps 600] [--out docs/figures]
[--suffix _layers_q50 --tag-filter '^\\|g\\|/grad/' --
--trainer.callbacks.init_args.layer_statistics=[abs_q50]]``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/fig3_combined/tanh_reg_scaled.yaml"
TABS = {"custom_scalars": "dashboard_custom_scalars.png",
        "timeseries": "dashboard_time_series.png", "scalars": "dashboard_scalars.png"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def data_dir(requested: str, scratch: Path) -> str:
    """``requested`` if it holds CIFAR-10, else synthetic batches in the CIFAR format."""
    sys.path.insert(0, str(ROOT))
    from lightning_sig.lightning.data_files import TEST_FILES, TRAIN_FILES, missing_files, \
        write_batches
    if requested and not missing_files(requested, TRAIN_FILES + TEST_FILES):
        return requested
    path = scratch / "cifar"
    write_batches(str(path), n_per_batch=2000, seed=0)
    return str(path)


def train(logs: Path, data: str, steps: int, extra: list) -> None:
    subprocess.run([sys.executable, "train.py", "fit", "--config", CONFIG,
                    "--data.data_dir", data, "--trainer.max_steps", str(steps),
                    "--trainer.logger.init_args.save_dir", str(logs),
                    "--trainer.enable_progress_bar", "false",
                    "--trainer.enable_checkpointing", "false", *extra], cwd=ROOT, check=True)


def wait_for_scalars(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags",
                                        timeout=5) as reply:
                if json.loads(reply.read().decode()):
                    return
        except OSError:
            pass
        time.sleep(1.0)
    raise RuntimeError(f"tensorboard did not serve scalars within {timeout} s")


def screenshot(chromium: str, url: str, out: Path, width: int, height: int) -> None:
    subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--window-size={width},{height}",
                    "--virtual-time-budget=30000", f"--screenshot={out}", url],
                   check=True, timeout=180, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "cifar10"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures"))
    parser.add_argument("--size", default="1500x1100", help="browser window, WIDTHxHEIGHT")
    parser.add_argument("--suffix", default="", help="appended to the file names")
    parser.add_argument("--tag-filter", default="", help="a regex for the Time Series tab's tag "
                        "filter (its tagFilter URL parameter), e.g. '^\\|g\\|/grad/'")
    parser.add_argument("cli_args", nargs="*", help="more arguments for train.py fit (after --)")
    args = parser.parse_args()
    chromium = next((shutil.which(c) for c in ("chromium", "chromium-browser",
                                               "google-chrome") if shutil.which(c)), None)
    tensorboard = shutil.which("tensorboard") or str(Path(sys.executable).parent / "tensorboard")
    if chromium is None:
        raise SystemExit("needs chromium (apt-get install -y chromium)")
    width, height = (int(v) for v in args.size.split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        logs = Path(scratch) / "runs"
        train(logs, data_dir(args.data_dir, Path(scratch)), args.steps, args.cli_args)
        port = free_port()
        server = subprocess.Popen([tensorboard, "--logdir", str(logs), "--host", "127.0.0.1",
                                   "--port", str(port)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env=dict(os.environ))
        try:
            wait_for_scalars(port)
            for tab, name in TABS.items():
                name = name.replace(".png", f"{args.suffix}.png")
                query = f"?tagFilter={urllib.parse.quote(args.tag_filter)}" \
                    if args.tag_filter and tab == "timeseries" else ""
                screenshot(chromium, f"http://127.0.0.1:{port}/{query}#{tab}", out / name,
                           width, height)
                print(f"wrote {out / name}")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
