"""The callback's lane for steady steps (lightning_sig.gradients.step_lane): the same event
files, bitwise, as the general path; used on exactly the steps it is for; declines, writing
nothing, whenever the general path must record a step."""
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_sig import CombinedNet, GradientQuantileCallback
from lightning_sig.gradients.kernel_row import KernelRow, kernel_available
from lightning_sig.gradients.row_key import RowKey
from lightning_sig.gradients.stats_pipeline import StatisticsPipeline
from lightning_sig.gradients.step_buffer import StepBuffer
from lightning_sig.gradients.step_lane import STEADY, make_lane, write_lane_rows
from lightning_sig.lightning.grad_sources import GradientReader

from tests.test_grad_buffer import _loader

pytestmark = pytest.mark.skipif(not kernel_available(), reason="needs the compiled kernel")


def _run(tmp_path, name, monkeypatch, lane: bool):
    used = []
    record_lane = StatisticsPipeline.record_lane

    def spy(self, *args):
        done = record_lane(self, *args)
        used.append(done)
        return done
    monkeypatch.setattr(StatisticsPipeline, "record_lane", spy)
    if not lane:
        monkeypatch.setattr(GradientReader, "lane", lambda self, *args: None)
    torch.manual_seed(0)
    model = CombinedNet(alpha=2.0, l2_strength=0.01, init="default")
    callback = GradientQuantileCallback(layer_statistics="all", buffer_steps=8,
                                        log_every_n_steps=5, histogram_every_n_steps=5)
    logger = TensorBoardLogger(tmp_path, name=name, version=0)
    pl.Trainer(logger=logger, callbacks=[callback], max_epochs=2, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False).fit(model, _loader())
    monkeypatch.undo()
    events = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    return events, sum(used)


@pytest.mark.numerics  # bitwise float equality: rerun under each ATEN_CPU_CAPABILITY by .ci/run
def test_lane_event_files_equal_the_general_path(tmp_path, monkeypatch):
    # 2 epochs of 10 steps, buffers of 8, steps 4, 9, 14, 19 logged (and histograms). Per epoch
    # the general path records: the first step (no lane yet; the epoch start resets it), the
    # logged steps, and the step after a buffer is full (8 rows: steps 0-7, 10-17): the lane
    # the other 2 × 6 steps, each with both rows (g and g − r·θ).
    general, none = _run(tmp_path, "general", monkeypatch, lane=False)
    laned, count = _run(tmp_path, "lane", monkeypatch, lane=True)
    assert none == 0 and count == 12
    tags = sorted(general.Tags()["scalars"])
    assert tags == sorted(laned.Tags()["scalars"]) and len(tags) > 100
    for tag in tags:
        assert [(e.step, e.value) for e in laned.Scalars(tag)] == \
            [(e.step, e.value) for e in general.Scalars(tag)], tag
    for tag in general.Tags()["histograms"]:
        assert [h.histogram_value for h in laned.Histograms(tag)] == \
            [h.histogram_value for h in general.Histograms(tag)], tag


def _setup(r=0.01):
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(5))]
    extra = torch.nn.Parameter(torch.randn(2))  # trainable, without a gradient
    for p in params:
        p.grad = torch.randn_like(p)
    spec_params = list(params)
    layout = (("global", "a", "b"), (12, 5), True)
    lane = make_lane((RowKey(0, "grad"), RowKey(0, "grad_data")), layout, params, [extra],
                     lambda: (r, spec_params), r, spec_params, log_every=5, every_k=1)
    buffers = [StepBuffer(4), StepBuffer(4)]
    flags = STEADY
    grads = [p.grad for p in params]
    buffers[0].append(layout, KernelRow(grads), 0, flags)  # the general path's first rows
    buffers[1].append(layout, KernelRow(grads, spec_params, r), 0, flags)
    return lane, buffers, params, extra


def test_lane_rows_equal_kernel_rows_bitwise():
    lane, buffers, params, _ = _setup()
    for p in params:
        p.grad = torch.randn_like(p)
    assert write_lane_rows(lane, buffers)
    assert [len(b) for b in buffers] == [1, 1]  # counted by the caller
    want_g, want_d = torch.empty(17), torch.empty(17)
    grads = [p.grad for p in params]
    KernelRow(grads).write(want_g)
    KernelRow(grads, params, 0.01).write(want_d)
    assert torch.equal(buffers[0].rows[1], want_g) and torch.equal(buffers[1].rows[1], want_d)
    flat_g = torch.cat([p.grad.reshape(-1) for p in params])
    flat_t = torch.cat([p.detach().reshape(-1) for p in params])
    assert torch.equal(want_g, flat_g) and torch.equal(want_d, flat_g - flat_t.mul(0.01))
    buffers[0].add_written(1, None)
    with pytest.raises(ValueError, match="empty or full"):
        StepBuffer(2).add_written(0, None)


@pytest.mark.parametrize("change", ["empty", "layout", "absent_gains_grad", "grad_gone",
                                    "strided_grad", "sparse_grad", "r", "spec_list", "unequal"])
def test_lane_declines_and_writes_nothing(change):
    lane, buffers, params, extra = _setup()
    if change == "empty":
        buffers = [StepBuffer(4), StepBuffer(4)]
    elif change == "layout":
        lane = lane._replace(layout=(("global", "a", "b"), (12, 5), False))
    elif change == "absent_gains_grad":
        extra.grad = torch.zeros(2)
    elif change == "grad_gone":
        params[1].grad = None
    elif change == "strided_grad":
        params[0].grad = torch.randn(4, 3).t()
    elif change == "sparse_grad":
        params[1].grad = torch.randn(5).to_sparse()
    elif change == "r":
        lane = lane._replace(l2=lambda: (0.02, lane.spec_params))
    elif change == "spec_list":
        lane = lane._replace(l2=lambda: (0.01, list(params)))
    elif change == "unequal":
        buffers[1].add_written(1, None)
    before = [None if b.rows is None else b.rows.clone() for b in buffers]
    assert not write_lane_rows(lane, buffers)
    for b, rows in zip(buffers, before):  # bit patterns: the free rows are uninitialized memory
        assert (b.rows is None and rows is None) or \
            torch.equal(b.rows.view(torch.int32), rows.view(torch.int32))


@pytest.mark.parametrize("log_every, every_k, steady", [
    (5, 1, [0, 1, 2, 3, 5, 6, 7, 8]),   # steps 4 and 9 are logged ((s + 1) % 5 == 0)
    (0, 1, list(range(10))),            # log_every_n_steps=0 logs no step
    (5, 2, [1, 3, 5, 7]),               # epoch means over every 2nd step; 9 is logged
])
def test_steady_steps_by_hand(log_every, every_k, steady):
    lane = make_lane((RowKey(0, "grad"),), (("global",), (1,), False), [], [], None, 0.0, None,
                     log_every, every_k)
    assert [s for s in range(10) if lane.is_steady(s)] == steady


@pytest.mark.parametrize("dtype, has_lane", [(torch.float32, True), (torch.float16, False),
                                             (torch.bfloat16, False)])
def test_lane_only_for_float32_parameters(dtype, has_lane):
    # half-precision gradients are converted by the general path, which the lane does not do
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)).to(dtype)
    module(torch.randn(5, 3, dtype=dtype)).float().square().sum().backward()
    reader = GradientReader(per_layer=True, data_gradient=True)
    rows = reader.read(module, False)
    assert [row.key.source for row in rows] == ["grad"]  # no penalty_gradients(): no data row
    lane = reader.lane(module, 50, 1)
    assert (lane is not None) == has_lane
    if has_lane:
        assert lane.keys == (RowKey(0, "grad"),) and lane.l2 is None
        assert lane.layout == rows[0].layout and reader.lane(module, 50, 1) is lane  # cached
