"""A real TensorBoard server reads our logs: what users open in the browser is what we logged.

Trains CombinedNet for 5 steps with the GradientQuantileCallback (every step), starts
``tensorboard --logdir <dir> --host 127.0.0.1 --port <free port>`` as a subprocess, asks its HTTP
data API for the run's scalar tags and for gradient-quantile series, and compares them with the
event files as TensorBoard's own reader (EventAccumulator) sees them. Every wait is bounded and the
server is stopped in a ``finally`` block. The server's start can take up to STARTUP_S on a busy
machine: marked ``slow`` (``-m "not slow"`` deselects it; it runs by default and in CI).
"""
from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_sig import CIFAR10DataModule, CombinedNet, SaturationMonitor
from lightning_sig import GradientQuantileCallback
from lightning_sig.gradients.tag_groups import canonical_tag, tensorboard_tag

RUN = "run/version_0"
SERIES = tuple(tensorboard_tag(t) for t in (  # in the callback's TensorBoard group
    "grad/global/abs_q50", "grad/net.features.0/abs_q25", "grad/global/nonfinite_count"))
STARTUP_S, REQUEST_S, STOP_S = 90.0, 5.0, 10.0
pytestmark = pytest.mark.slow


def _tensorboard_binary() -> str:
    local = Path(sys.executable).parent / "tensorboard"  # the entry point of this interpreter
    found = str(local) if local.is_file() else shutil.which("tensorboard")
    if found is None:
        pytest.skip("the `tensorboard` command is not installed (pip install tensorboard)")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str, **query):
    url = f"http://127.0.0.1:{port}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=REQUEST_S) as response:
        return json.loads(response.read().decode())


def _wait_for_tags(proc: subprocess.Popen, port: int, wanted: set) -> dict:
    """Poll /data/plugin/scalars/tags until RUN lists ``wanted`` (bounded by STARTUP_S)."""
    deadline, last = time.monotonic() + STARTUP_S, None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"tensorboard exited early with code {proc.returncode}")
        try:
            last = _get(port, "/data/plugin/scalars/tags")
            if wanted <= set(last.get(RUN, {})):
                return last
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            pass  # not listening or not loaded yet
        time.sleep(0.5)
    pytest.fail(f"tensorboard did not serve the run's tags within {STARTUP_S} s; last answer: {last}")


@pytest.fixture()
def logged_run(tmp_path, fake_cifar):
    pl.seed_everything(0)
    trainer = pl.Trainer(max_steps=5, log_every_n_steps=1, deterministic=True,
                         num_sanity_val_steps=0, limit_val_batches=1, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         logger=TensorBoardLogger(str(tmp_path / "tb"), name="run", version=0),
                         callbacks=[GradientQuantileCallback(log_every_n_steps=1),
                                    SaturationMonitor()])
    trainer.fit(CombinedNet(alpha=2.0, l2_strength=0.01), CIFAR10DataModule(str(fake_cifar), batch_size=20))
    trainer.logger.finalize("success")
    acc = EventAccumulator(str(tmp_path / "tb" / RUN), size_guidance={"scalars": 0})
    acc.Reload()
    return tmp_path / "tb", acc


def test_tensorboard_serves_the_logged_values(logged_run, tmp_path):
    logdir, acc = logged_run
    tags = set(acc.Tags()["scalars"])
    assert set(SERIES) <= tags and "train/loss" in tags
    binary = _tensorboard_binary()
    port = _free_port()
    log = open(tmp_path / "tensorboard.log", "w")
    proc = subprocess.Popen([binary, "--logdir", str(logdir), "--host", "127.0.0.1",
                             "--port", str(port), "--reload_interval", "1"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        served_tags = _wait_for_tags(proc, port, tags)
        assert set(served_tags) == {RUN} and set(served_tags[RUN]) == tags
        for tag in SERIES + ("train/loss",):
            served = _get(port, "/data/plugin/scalars/scalars", run=RUN, tag=tag)
            expected = [(e.step, e.value) for e in acc.Scalars(tag)]
            assert [(step, value) for _, step, value in served] == expected, tag
            assert [s for s, _ in expected] == list(range(5)), tag
        _check_custom_scalars_layout(port, tags)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_S)
        log.close()
    assert proc.returncode is not None


def _check_custom_scalars_layout(port: int, tags: set) -> None:
    """The custom-scalars plugin serves our layout: margin charts (median with the quartile
    band) for global and every layer, whose tags all exist; the saturation regexes match."""
    layout = _get(port, "/data/plugin/custom_scalars/layout")
    categories = {c["title"]: c["chart"] for c in layout["category"]}
    assert set(categories) == {"gradient |g|: global", "gradient |g|: layers",
                               "activation saturation"}
    margins = {chart["title"]: chart["margin"]["series"][0]
               for charts in categories.values() for chart in charts if "margin" in chart}
    assert margins["grad global median |g| (band: quartiles)"] == {
        "value": "|g|/grad/global/abs_q50", "lower": "|g|/grad/global/abs_q25",
        "upper": "|g|/grad/global/abs_q75"}  # the callback's TensorBoard group (tag_groups)
    assert "grad_data net.features.0" in margins and "grad_epoch net.classifier.1" in margins
    for series in margins.values():
        assert set(series.values()) <= tags, series
    regexes = [t for chart in categories["activation saturation"]
               for t in chart["multiline"]["tag"]]
    for regex in regexes:
        assert any(re.fullmatch(regex, t) for t in tags), regex
