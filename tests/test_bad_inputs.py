"""Bad-input matrix, through the CLI and the Python API.

Each bad input must raise a clear error naming the bad value and what is valid, before any
training step, and leave every existing file alone: the work folder (a finished earlier run
with its config, events and checkpoint, the data, the config files) is hashed before and after.
A CLI error raised in ``setup`` (after Lightning opened the logger) leaves no new
``version_N`` folder either: nothing may appear. Through the CLI, our ValueErrors and
FileNotFoundErrors print as one ``error:`` line (exit status 2), as jsonargparse's own errors do.
"""
from __future__ import annotations

import hashlib
import pickle
import re
import shutil
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import pytest
import pytorch_lightning as pl

from lightning_sig import CIFAR10DataModule, CombinedNet
from lightning_sig.lightning.cli import main
from lightning_sig.lightning.data_files import BASE_FOLDER, write_batches
from lightning_sig import GradientQuantileCallback
from lightning_sig import NonFiniteLossGuard

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "fig3_combined" / "tanh_reg_scaled.yaml"
RUN_DIR = Path("runs") / "fig3_combined" / "tanh_reg_scaled"
GUARD = "lightning_sig.NonFiniteLossGuard"


@dataclass
class Case:
    """One bad input. ``api``/``cli`` take (work folder, data_dir); ``prep`` corrupts the data."""
    id: str
    match: str  # regex searched in the message (str(exception), or stderr for SystemExit)
    api: Optional[Callable] = None
    cli: Optional[Callable] = None
    error: type = ValueError
    cli_error: Optional[type] = None  # when the CLI fails differently (jsonargparse: SystemExit)
    data: Callable = lambda work: work / "data"
    prep: Optional[Callable] = None


def _model(**kw):
    return lambda work, data: CombinedNet(**kw)


def _model_cli(key, value):
    return lambda work, data: [f"--model.init_args.{key}", value]


def _fit(dm_kwargs):
    """The Python path of the data cases: a real Trainer.fit that must fail before any step."""
    def run(work, data):
        started = []
        probe = pl.Callback()
        probe.on_train_batch_start = lambda *args: started.append(True)
        trainer = pl.Trainer(max_steps=2, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, callbacks=[probe])
        try:
            trainer.fit(CombinedNet(), CIFAR10DataModule(str(data), **dm_kwargs))
        finally:
            assert not started, "training started before the error"
    return run


def _truncate(work):
    path = work / "data" / BASE_FOLDER / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])


def _wrong_shape(work):
    with open(work / "data" / BASE_FOLDER / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((4, 1000), np.uint8), "labels": [0, 1, 2, 3]}, f)


def _write_misspelt_config(work):
    (work / "misspelt.yaml").write_text(CONFIG.read_text().replace("l2_strength:", "l2_strenght:"))


ALPHA = r"alpha must be a finite number > 0, got "
CASES: List[Case] = [
    Case("activation_unknown", r"Unknown activation family 'tanhh'; valid names: arctan, identity, "
         r"logsigmoid, relu, sigmoid, softsign, tanh, logistic", _model(activation="tanhh"),
         _model_cli("activation", "tanhh")),
    Case("alpha_zero", ALPHA + r"0(\.0)?\.", _model(alpha=0), _model_cli("alpha", "0")),
    Case("alpha_negative", ALPHA + r"-1(\.0)?\.", _model(alpha=-1), _model_cli("alpha", "-1")),
    Case("alpha_nan", ALPHA + "nan", _model(alpha=float("nan")), _model_cli("alpha", ".nan")),
    Case("alpha_inf", ALPHA + "inf", _model(alpha=float("inf")), _model_cli("alpha", ".inf")),
    Case("alpha_nan_text", r"Expected a <class 'float'>. Got value: nan",
         cli=_model_cli("alpha", "nan"), cli_error=SystemExit),
    Case("alpha_string", ALPHA + "'abc'", _model(alpha="abc")),
    Case("alpha_string_cli", r"Expected a <class 'float'>. Got value: abc",
         cli=_model_cli("alpha", "abc"), cli_error=SystemExit),
    Case("r_negative", r"l2_strength \(r\) must be a finite number >= 0, got -0.5",
         _model(l2_strength=-0.5), _model_cli("l2_strength", "-0.5")),
    Case("r_nan", r"l2_strength \(r\) must be a finite number >= 0, got nan",
         _model(l2_strength=float("nan")), _model_cli("l2_strength", ".nan")),
    Case("init_unknown", r"Unknown init scheme 'xavier'; valid: uniform, normal, default",
         _model(init="xavier"), _model_cli("init", "xavier")),
    Case("init_scale_zero", r"init_scale must be a finite number > 0, got 0(\.0)?\.",
         _model(init_scale=0), _model_cli("init_scale", "0")),
    Case("init_scale_negative", r"init_scale must be a finite number > 0, got -2(\.0)?\.",
         _model(init="normal", init_scale=-2), _model_cli("init_scale", "-2")),
    Case("quantile_above_one", r"quantile level 1.5 is not a number in \[0, 1\] \(valid: 0 <= q <= 1\)",
         lambda w, d: GradientQuantileCallback(quantiles=[0.5, 1.5]),
         lambda w, d: ["--trainer.callbacks.init_args.quantiles", "[0.5, 1.5]"]),
    Case("quantile_negative", r"quantile level -0.1 is not a number in \[0, 1\]",
         lambda w, d: GradientQuantileCallback(quantiles=[-0.1]),
         lambda w, d: ["--trainer.callbacks.init_args.quantiles", "[-0.1]"]),
    Case("nonfinite_action", r"action must be one of 'stop', 'continue', got 'halt'",
         lambda w, d: NonFiniteLossGuard(action="halt"),
         lambda w, d: [f"--trainer.callbacks+={GUARD}", "--trainer.callbacks.init_args.action", "halt"]),
    Case("batch_size_zero", r"batch_size must be an integer >= 1, got 0\.", _fit({"batch_size": 0}),
         lambda w, d: ["--data.batch_size", "0"]),
    Case("val_split_too_large", r"val_split=100 must be smaller than the training set \(100 images\)",
         _fit({"val_split": 100}), lambda w, d: ["--data.val_split", "100"]),
    Case("data_dir_missing", r"data_dir='[^']*nowhere' does not exist .*cifar-10-batches-py.*"
         r"download https://www\.cs\.toronto\.edu/~kriz/cifar-10-python\.tar\.gz",
         _fit({}), lambda w, d: [], FileNotFoundError, data=lambda work: work / "nowhere"),
    Case("data_dir_is_batches_folder", r"points at the cifar-10-batches-py folder itself; pass its "
         r"parent folder instead \(data_dir='[^']*data'\)", _fit({}), lambda w, d: [],
         FileNotFoundError, data=lambda work: work / "data" / BASE_FOLDER),
    Case("truncated_batch", r"data_batch_3 is truncated or unreadable .*delete it and supply it again",
         _fit({}), lambda w, d: [], prep=_truncate),
    Case("wrong_shape_batch", r"test_batch has data of shape \(4, 1000\) \(uint8\) and 4 labels; "
         r"expected \(N, 3072\) uint8", _fit({}), lambda w, d: [], prep=_wrong_shape),
    Case("download_offline", r"Downloading CIFAR-10 into '[^']*offline' failed \(URLError: .*\); "
         r"are you offline\? To supply the files by hand, download https://www\.cs\.toronto\.edu/~kriz/"
         r"cifar-10-python\.tar\.gz on a machine with internet access, extract it into <data_dir>", _fit({"download": True}),
         lambda w, d: ["--data.download", "true"], RuntimeError, data=lambda work: work / "offline"),
    Case("config_misspelt_key", r"l2_strenght", cli=lambda w, d: ["--config", str(w / "misspelt.yaml")],
         cli_error=SystemExit, prep=_write_misspelt_config),
]
PARAMS = [pytest.param(c, mode, id=f"{c.id}-{mode}") for c in CASES for mode in ("api", "cli")
          if getattr(c, mode) is not None]


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory):
    """A work folder holding synthetic data and a finished run (config, events, checkpoint)."""
    work = tmp_path_factory.mktemp("work")
    write_batches(str(work / "data"), n_per_batch=20, seed=0)
    main(_cli_base(work, work / "data") + ["--trainer.max_steps", "1"])
    assert list((work / RUN_DIR / "version_0" / "checkpoints").glob("*.ckpt"))
    return work


def _cli_base(work: Path, data: Path) -> list:
    return ["fit", "--config", str(CONFIG), "--data.data_dir", str(data),
            "--trainer.logger.init_args.save_dir", str(work / "runs"), "--trainer.max_steps", "2",
            "--trainer.log_every_n_steps", "1", "--trainer.limit_val_batches", "1",
            "--trainer.num_sanity_val_steps", "0", "--trainer.enable_progress_bar", "false"]


def _snapshot(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "<dir>" for p in root.rglob("*")}


def _assert_untouched(before: dict, after: dict) -> None:
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert not changed, f"modified or deleted: {changed}"
    assert not after.keys() - before.keys(), f"new: {sorted(after.keys() - before.keys())}"


@pytest.mark.parametrize("case,mode", PARAMS)
def test_bad_input_is_named_and_nothing_is_touched(case, mode, earlier_run, tmp_path, capsys,
                                                   monkeypatch):
    work = tmp_path / "work"
    shutil.copytree(earlier_run, work)
    if case.prep:
        case.prep(work)
    data = case.data(work)
    import torchvision.datasets.utils as tvu

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")
    monkeypatch.setattr(tvu, "download_and_extract_archive", offline)
    before = _snapshot(work)
    one_line = mode == "cli" and case.cli_error is None and \
        case.error in (ValueError, FileNotFoundError)
    expected = (case.cli_error or (SystemExit if one_line else case.error)) if mode == "cli" \
        else case.error
    with pytest.raises(expected) as info:
        if mode == "api":
            case.api(work, data)
        else:
            extra = case.cli(work, data)
            base = _cli_base(work, data)
            if extra[:1] == ["--config"]:  # replaces the paper config
                base[2] = extra[1]
                extra = extra[2:]
            main(base + extra)
    message = capsys.readouterr().err if expected is SystemExit else str(info.value)
    assert re.search(case.match, message, re.S), message
    if one_line:  # the message as one line, then nothing but the tip
        assert info.value.code == 2
        errors = [line for line in message.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and re.search(case.match, errors[0]), message
        assert "Traceback" not in message and "tip: For details of accepted options run: " \
            "python train.py fit --help" in message
    _assert_untouched(before, _snapshot(work))
