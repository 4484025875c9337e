"""The callback's statistics off the training thread: the same event files as computing on the
training thread (``async_stats=False``), every value written before ``on_train_end`` and before
each checkpoint, a worker's error raised in the training process, one reused working copy for
a large gradient, and the worker's order."""
import threading

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, TensorDataset

from lightning_sig import CombinedNet, GradientQuantileCallback
from lightning_sig.gradients import step_jobs
from lightning_sig.gradients.row_key import RowKey
from lightning_sig.gradients.stats_pipeline import StatisticsPipeline
from lightning_sig.gradients.stats_worker import StatisticsWorker
from lightning_sig.gradients.step_jobs import StepFlags
from lightning_sig.gradients.tag_groups import canonical_tag, tensorboard_tag
from tests.test_grad_callback import RecordingLogger


def _loader(n=40, batch=4):
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))
    return DataLoader(data, batch_size=batch)


def _events(tmp_path, name, **callback_kwargs):
    torch.manual_seed(0)
    logger = TensorBoardLogger(tmp_path, name=name, version=0)
    callback = GradientQuantileCallback(layer_statistics="all", histogram_every_n_steps=3, **callback_kwargs)
    pl.Trainer(max_epochs=2, logger=logger, callbacks=[callback], log_every_n_steps=1,
               enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(CombinedNet(alpha=2.0, l2_strength=0.01,
                                                           init="default"), _loader())
    acc = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    scalars = {canonical_tag(t): [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
    histograms = {canonical_tag(t): [(h.step, h.histogram_value) for h in acc.Histograms(t)]
                  for t in acc.Tags()["histograms"]}
    return scalars, histograms


@pytest.fixture()
def thread_every_job(monkeypatch):
    """Also the small jobs of these tiny nets go to the thread (not computed at submission)."""
    monkeypatch.setattr("lightning_sig.gradients.stats_pipeline.THREAD_MIN_NUMEL", 0)


@pytest.mark.parametrize("buffer_steps", [1, 8])
def test_async_and_sync_write_the_same_events(tmp_path, buffer_steps, thread_every_job):
    sync = _events(tmp_path, "sync", async_stats=False, buffer_steps=buffer_steps)
    threaded = _events(tmp_path, "async", async_stats=True, buffer_steps=buffer_steps)
    assert sync == threaded
    scalars, histograms = threaded
    assert [s for s, _ in scalars["grad/global/abs_q50"]] == list(range(20))
    assert [s for s, _ in scalars["grad_data/net.features.0/l2_norm"]] == list(range(20))
    assert [s for s, _ in histograms["grad_hist/global/log10_abs"]] == [2, 5, 8, 11, 14, 17]


class SeesEverything(pl.Callback):
    """After the gradient callback: at on_train_end and at each checkpoint, the steps whose
    gradient scalars the logger already has."""

    def __init__(self, logger):
        self.logger, self.at_end, self.at_checkpoint = logger, None, {}

    def _steps(self):
        return sorted({s for s, m in self.logger.records if "grad/global/abs_q50" in m})

    def on_train_end(self, trainer, pl_module):
        self.at_end = self._steps()

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self.at_checkpoint[trainer.global_step] = self._steps()


def test_values_are_written_before_train_end_and_before_checkpoints(tmp_path, thread_every_job):
    torch.manual_seed(0)
    logger = RecordingLogger()
    seer = SeesEverything(logger)
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=4,
                                              save_top_k=-1)
    # buffer_steps=32 and a TensorBoard-free logger: without the guarantees, nothing would be
    # written before the epoch end; callback order: ours, then the checkpoint and the observer
    callback = GradientQuantileCallback(layer_statistics="all", buffer_steps=32, histograms=False)
    pl.Trainer(max_steps=10, logger=logger, log_every_n_steps=1,
               callbacks=[callback, checkpoint, seer], enable_progress_bar=False,
               enable_model_summary=False).fit(CombinedNet(init="default"), _loader())
    assert seer.at_end == list(range(10))
    assert seer.at_checkpoint == {4: [0, 1, 2, 3], 8: list(range(8))}


def test_a_failing_computation_is_raised_in_the_training_process(tmp_path, monkeypatch,
                                                                 thread_every_job):
    def broken(job, *args):
        if job.steps[0] >= 3:
            raise ArithmeticError("broken statistics")
        return real(job, *args)
    real = step_jobs.compute_job
    monkeypatch.setattr("lightning_sig.gradients.stats_pipeline.compute_job", broken)
    logger = RecordingLogger()
    trainer = pl.Trainer(max_steps=8, logger=logger, log_every_n_steps=1,
                         callbacks=[GradientQuantileCallback(layer_statistics="all", buffer_steps=1, histograms=False)],
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    with pytest.raises(RuntimeError, match=r"steps \[3\].*ArithmeticError: broken statistics"):
        trainer.fit(CombinedNet(init="default"), _loader())
    assert [s for s, m in logger.records if "grad/global/abs_q50" in m] == [0, 1, 2]


def test_a_large_gradient_has_one_reused_working_copy():
    pipeline = StatisticsPipeline((0.5,), 1e-8, False, buffer_steps=32, threaded=True)
    key, layout = RowKey(0, "grad"), (("global", "a"), (1 << 20,), True)
    storages = set()
    tables = []
    for step in range(4):
        grad = torch.full((1 << 20,), float(step + 1))
        pipeline.record(key, layout, [grad], step, StepFlags(True, False, False))
        storages.add(pipeline._buffers[key]._lent.data_ptr())  # the rows of the job in flight
    pipeline.take(True, lambda job, table, hist: tables.append(table))
    pipeline.close()
    assert len(storages) == 1  # one buffer: each copy waited for the job reading it
    assert [t[0, 0, 0].item() for t in tables] == [1.0, 2.0, 3.0, 4.0]


def test_reusing_the_copy_of_a_job_already_taken_does_not_wait():
    """Record, take the result, record again: the buffer's storage is free (a taken job's
    ticket counts as finished). Run in a thread so that a wait forever fails the test."""
    pipeline = StatisticsPipeline((0.5,), 1e-8, False, buffer_steps=1, threaded=True)
    key, layout = RowKey(0, "grad"), (("global", "a"), (1 << 20,), True)
    tables = []

    def steps():
        for step in range(3):
            pipeline.record(key, layout, [torch.full((1 << 20,), step + 1.0)], step,
                            StepFlags(True, False, False))
            pipeline.take(True, lambda job, table, hist: tables.append(table))
    runner = threading.Thread(target=steps, daemon=True)
    runner.start()
    runner.join(120)
    pipeline.close()
    assert not runner.is_alive(), "recording waited for a job whose result was taken"
    assert [t[0, 0, 0].item() for t in tables] == [1.0, 2.0, 3.0]


def test_worker_returns_results_in_order_and_errors_at_their_place():
    release = threading.Event()
    worker = StatisticsWorker(threaded=True)
    first = worker.submit(lambda: release.wait() and "first")
    worker.submit(lambda: "second")
    worker.submit(lambda: 1 / 0)
    worker.submit(lambda: "fourth")
    assert not worker.ready(first) and worker.take(block=False) == []  # the first blocks all
    release.set()
    taken = worker.take(block=True)
    assert [o for _, o in taken] == ["first", "second", None]
    assert isinstance(taken[-1][0], ZeroDivisionError) and len(worker) == 1
    assert worker.take(block=True) == [(None, "fourth")]
    worker.close()
