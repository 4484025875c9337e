"""Buffered statistics (lightning_sig.gradients.step_buffer and the callback's ``buffer_steps``): the
same values at the same steps as computing at every step, written at the latest at epoch end,
before a checkpoint and on an exception; other loggers get increasing steps."""
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, TensorDataset

from lightning_sig import CombinedNet, GradientQuantileCallback
from lightning_sig.gradients.quantile_engine import table_statistics
from lightning_sig.gradients.step_buffer import StepBuffer
from lightning_sig.gradients.stats import layer_statistics as segment_statistics
from lightning_sig.gradients.tag_groups import canonical_tag, tensorboard_tag

from tests.test_grad_callback import GradRecorder, RecordingLogger, _check_record

LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)


def batched_statistics(rows, sizes, levels, threshold, signed, with_total):
    """(S, G, K) statistics of S rows in one engine call (what the callback's jobs run)."""
    return table_statistics(rows, sizes, levels, threshold, rows=rows.shape[0], signed=signed,
                            with_total=with_total)


# numerics: .ci/run reruns it under each ATEN_CPU_CAPABILITY. The Trainer tests below compare
# the callback's float64 statistics with float64 numpy ones of the same gradients (rel 1e-9):
# float64 rounding, not the ISA's float32 kernels, so they run once.
@pytest.mark.numerics
def test_batched_statistics_equal_per_row():
    g = torch.Generator().manual_seed(0)
    sizes = (5, 0, 12, 3)
    rows = torch.randn(4, sum(sizes), generator=g) * torch.tensor([1e-6, 1e-3, 1.0, 10.0])[:, None]
    rows[2, 7] = float("nan")
    out = batched_statistics(rows, sizes, LEVELS, 1e-5, True, with_total=True)
    assert out.shape[:2] == (4, 1 + len(sizes))
    for s in range(4):
        want = segment_statistics(rows[s], sizes, LEVELS, 1e-5, signed=True, with_total=True)
        torch.testing.assert_close(out[s], want, rtol=1e-12, atol=0, equal_nan=True)
    no_total = batched_statistics(rows, sizes, LEVELS, 1e-5, False, with_total=False)
    # the same float64 statistics of the same rows with the total left out: as exact as above
    # (the float64 default atol 1e-7 would accept any error on the 1e-6-sized row)
    torch.testing.assert_close(no_total, out[:, 1:, :no_total.shape[2]], rtol=1e-12, atol=0,
                               equal_nan=True)


def test_step_buffer_rows_layouts_and_errors():
    buffer = StepBuffer(2)
    buffer.append("a", torch.tensor([1.0, 2.0]), step=7, logged=True)
    assert buffer.accepts("a") and not buffer.accepts("b") and not buffer.full
    buffer.append("a", torch.tensor([3.0, 4.0]), step=8, logged=False)
    assert buffer.full
    with pytest.raises(ValueError, match="full or has another layout"):
        buffer.append("a", torch.tensor([5.0, 6.0]), step=9, logged=False)
    key, rows, steps, logged = buffer.take()
    assert key == "a" and rows.tolist() == [[1, 2], [3, 4]] and steps == [7, 8]
    assert logged == [True, False] and len(buffer) == 0 and buffer.accepts("b")
    buffer.append("b", torch.tensor([1.0, 2.0, 3.0]), step=9, logged=True)  # new width
    assert buffer.take()[1].tolist() == [[1, 2, 3]]
    with pytest.raises(ValueError, match="capacity must be >= 1, got 0"):
        StepBuffer(0)


def test_buffer_steps_must_be_positive():
    for bad in (0, -3, 2.5, None, True):
        with pytest.raises(ValueError, match="buffer_steps must be a positive integer"):
            GradientQuantileCallback(layer_statistics="all", buffer_steps=bad)


def _loader(n=40, batch=4):
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))
    return DataLoader(data, batch_size=batch)


def _tb_run(tmp_path, name, buffer_steps, **trainer_kwargs):
    torch.manual_seed(0)
    model = CombinedNet(alpha=2.0, l2_strength=0.01, init="default")
    callback = GradientQuantileCallback(layer_statistics="all", buffer_steps=buffer_steps, histogram_every_n_steps=3)
    logger = TensorBoardLogger(tmp_path, name=name, version=0)
    kwargs = dict(max_epochs=2, log_every_n_steps=1, enable_checkpointing=False,
                  enable_progress_bar=False, enable_model_summary=False)
    kwargs.update(trainer_kwargs)
    pl.Trainer(logger=logger, callbacks=[callback], **kwargs).fit(model, _loader())
    ea = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0, "histograms": 0})
    ea.Reload()
    return ea


def test_buffered_event_files_equal_every_step(tmp_path):
    """20 steps in 2 epochs, buffer of 8 (flushes mid-epoch, at epoch end with 2 left over)."""
    eager, buffered = _tb_run(tmp_path, "eager", 1), _tb_run(tmp_path, "buffered", 8)
    tags = sorted(eager.Tags()["scalars"])
    assert tags == sorted(buffered.Tags()["scalars"])
    plain = [canonical_tag(t) for t in tags]  # names without the TensorBoard group
    assert "grad/global/abs_q50" in plain and "grad_epoch/net.features.0/rms" in plain
    for tag in tags:
        want = [(e.step, e.value) for e in eager.Scalars(tag)]
        got = [(e.step, e.value) for e in buffered.Scalars(tag)]
        assert got == want, tag
    assert [e.step for e in buffered.Scalars(tensorboard_tag("grad/global/l2_norm"))] == list(range(20))
    assert [e.step for e in buffered.Scalars(tensorboard_tag("grad_epoch/global/l2_norm"))] == [10, 20]
    hist = buffered.Histograms(tensorboard_tag("grad_hist/global/log10_abs"))
    assert [h.step for h in hist] == [2, 5, 8, 11, 14, 17]
    assert [h.histogram_value for h in hist] == \
        [h.histogram_value for h in eager.Histograms(tensorboard_tag("grad_hist/global/log10_abs"))]


def test_non_tensorboard_logger_gets_each_logging_step_in_order(tmp_path):
    torch.manual_seed(0)
    logger, recorder = RecordingLogger(), GradRecorder()
    trainer = pl.Trainer(max_steps=6, logger=logger, log_every_n_steps=2,
                         callbacks=[GradientQuantileCallback(layer_statistics="all", buffer_steps=32), recorder],
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(CombinedNet(init="default"), _loader())
    records = logger.grad_records()
    assert [s for s, _ in records] == [1, 3, 5]  # written at their own logging steps
    for (step, metrics) in records:
        _check_record(metrics, recorder.steps[step])


class FailAt(pl.Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError("boom")


def test_exception_and_checkpoint_flush(tmp_path):
    torch.manual_seed(0)
    logger = TensorBoardLogger(tmp_path, name="fail", version=0)
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=3,
                                              save_top_k=-1)
    callback = GradientQuantileCallback(layer_statistics="all", buffer_steps=32, histograms=False)
    trainer = pl.Trainer(max_epochs=1, logger=logger, log_every_n_steps=1,
                         callbacks=[callback, checkpoint, FailAt(5)],
                         enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(CombinedNet(init="default"), _loader())
    ea = EventAccumulator(logger.log_dir)
    ea.Reload()
    assert [e.step for e in ea.Scalars(tensorboard_tag("grad/global/abs_q50"))] == [0, 1, 2, 3, 4]
    # the checkpoint after step 3 (global_step 3) holds the epoch sums of steps 0-2
    state = torch.load(tmp_path / "ckpt" / "epoch=0-step=3.ckpt", weights_only=False)
    sums = next(v for k, v in state["callbacks"].items() if "GradientQuantile" in k)["epoch"]
    names, total, count = sums[0]
    assert names[0] == "global" and count.max().item() == 3
