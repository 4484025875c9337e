"""Edge cases of the GradientQuantileCallback (reuse, intermittent layers, mixed dtypes, sparse
gradients, logger prefix, early stop), grad_segments (empty segments) and folding (double
backward, shared layers, in-place safety, bf16).

Each test states the behaviour the documentation promises and a hand-computed or numpy
reference. Tiny models and data, a few steps each.
"""
import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sig import GradientQuantileCallback
from lightning_sig.nn.folding import ScaleAndPenalize, run_folded_penalized
from lightning_sig.gradients.stats import layer_statistics as segment_statistics
from lightning_sig.gradients.stats import gradient_statistics_tensor
from lightning_sig.gradients.tag_groups import canonical_tag, tensorboard_tag

from tests.test_grad_callback import GradRecorder, RecordingLogger

pytestmark = pytest.mark.numerics  # .ci/run reruns these under each ATEN_CPU_CAPABILITY

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


class Tiny(pl.LightningModule):
    """Two linear layers ``a`` (4→3) and ``b`` (3→2), SGD."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(3, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.b(torch.tanh(self.a(x))), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader(n=16, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    data = TensorDataset(torch.randn(n, 4, generator=g), torch.randint(0, 2, (n,), generator=g))
    return DataLoader(data, batch_size=batch)


def _trainer(logger, callbacks, **kwargs):
    options = dict(max_epochs=1, logger=logger, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1)
    options.update(kwargs)
    return pl.Trainer(callbacks=callbacks, **options)


def _norm(step_grads, prefix=""):
    """L2 norm of the gradients of the parameters whose name starts with ``prefix``."""
    parts = [g.flatten().numpy() for n, g in step_grads.items() if n.startswith(prefix)]
    return float(np.linalg.norm(np.concatenate(parts)))


# ------------------------------------------------------------------ GradientQuantileCallback
def test_reused_callback_epoch_mean_is_of_its_own_fit_only():
    """One callback instance, two successive fits (new Trainer, new model, epoch 0 each): the
    second fit's ``grad_epoch`` mean must be the mean over the second fit's steps only."""
    callback = GradientQuantileCallback(layer_statistics="all", histograms=False)
    for run in range(2):
        torch.manual_seed(run)
        logger, recorder = RecordingLogger(), GradRecorder()
        _trainer(logger, [callback, recorder], max_steps=3).fit(Tiny(), _loader(seed=run))
        (step, metrics), = logger.grad_records("grad_epoch/")
        want = np.mean([_norm(g) for g in recorder.steps])
        assert step == 3
        assert metrics["grad_epoch/global/l2_norm"] == pytest.approx(want, rel=1e-9), run


class Intermittent(Tiny):
    """Layer ``c`` is used on every other batch only (its grad is None on the others)."""

    def __init__(self):
        super().__init__()
        self.c = nn.Linear(4, 3)

    def training_step(self, batch, batch_idx):
        x, y = batch
        h = self.a(x) + (self.c(2.0 * x) if batch_idx % 2 == 0 else 0.0)
        return F.cross_entropy(self.b(torch.tanh(h)), y)


def test_epoch_mean_covers_every_step_when_a_layer_is_intermittent():
    """``grad_epoch/<g>/<stat>`` is documented as the mean over the epoch's optimizer steps (steps
    where a statistic is undefined left out): layer ``a`` has a gradient at all 6 steps, ``c`` at
    steps 0, 2, 4."""
    torch.manual_seed(0)
    logger, recorder = RecordingLogger(), GradRecorder()
    _trainer(logger, [GradientQuantileCallback(layer_statistics="all", histograms=False), recorder],
             max_steps=6).fit(Intermittent(), _loader())
    (_, metrics), = logger.grad_records("grad_epoch/")
    assert len(recorder.steps) == 6
    want_a = np.mean([_norm(g, "a.") for g in recorder.steps])
    want_global = np.mean([_norm(g) for g in recorder.steps])
    want_c = np.mean([_norm(g, "c.") for g in recorder.steps if "c.weight" in g])
    assert metrics["grad_epoch/a/l2_norm"] == pytest.approx(want_a, rel=1e-9)
    assert metrics["grad_epoch/global/l2_norm"] == pytest.approx(want_global, rel=1e-9)
    assert metrics.get("grad_epoch/c/l2_norm") == pytest.approx(want_c, rel=1e-9)


class MixedHalf(pl.LightningModule):
    """A bfloat16 layer ``lo`` and a float16 layer ``hi``; gradients set by hand."""

    def __init__(self):
        super().__init__()
        self.lo = nn.Linear(2, 2).to(torch.bfloat16)
        self.hi = nn.Linear(2, 2).to(torch.float16)

    def training_step(self, batch, batch_idx):
        return 0.0 * sum(p.float().sum() for p in self.parameters()) + 0.0 * batch[0].sum()

    def on_after_backward(self):
        for p in self.parameters():
            p.grad.zero_()
        self.lo.weight.grad.fill_(1e5)  # bfloat16: 99840, beyond float16's max 65504
        self.hi.weight.grad.fill_(1.0009765625)  # float16 1 + 2^-10, rounds to 1.0 in bfloat16

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_mixed_float16_bfloat16_gradients_are_not_rounded_into_the_other_format():
    logger = RecordingLogger()
    _trainer(logger, [GradientQuantileCallback(layer_statistics="all", histograms=False)], max_steps=1).fit(
        MixedHalf(), _loader())
    (_, metrics), = logger.grad_records()
    assert metrics["grad/global/nonfinite_count"] == 0  # every gradient value is finite
    assert metrics["grad/global/abs_q100"] == 99840.0
    assert metrics["grad/lo/abs_q100"] == 99840.0
    assert metrics["grad/hi/abs_q100"] == 1.0009765625


class SparseEmbedding(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.e, self.l = nn.Embedding(10, 3, sparse=True), nn.Linear(3, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.l(self.e((x[:, 0].abs() * 3).long() % 10)), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class DenseRecorder(pl.Callback):
    def __init__(self):
        self.steps = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.steps.append({n: p.grad.detach().to_dense().double().clone()
                           for n, p in pl_module.named_parameters() if p.grad is not None})


def test_sparse_embedding_gradient_does_not_crash_training():
    """nn.Embedding(sparse=True) gives a sparse COO gradient; the callback must not kill the run
    (statistics of the dense gradient, zeros of unused rows included)."""
    torch.manual_seed(0)
    logger, recorder = RecordingLogger(), DenseRecorder()
    _trainer(logger, [GradientQuantileCallback(layer_statistics="all", histograms=False), recorder],
             max_steps=2).fit(SparseEmbedding(), _loader())
    records = logger.grad_records()
    assert [s for s, _ in records] == [0, 1]
    for (_, metrics), grads in zip(records, recorder.steps):
        assert metrics["grad/e/l2_norm"] == pytest.approx(_norm(grads, "e."), rel=1e-6)


class PrefixedTiny(Tiny):
    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.log("train/loss", loss)
        return loss


def test_tensorboard_logger_prefix_applies_to_gradient_tags(tmp_path):
    """_ScalarSummary claims to be equivalent to ``logger.log_metrics`` (same tags): with
    ``TensorBoardLogger(prefix="p")`` log_metrics writes ``p-<tag>`` (as for the module's own
    ``p-train/loss``, and as a CSVLogger with the same prefix gets from this callback)."""
    torch.manual_seed(0)
    logger = TensorBoardLogger(tmp_path, name="tb", version=0, prefix="p")
    _trainer(logger, [GradientQuantileCallback(layer_statistics="all", histogram_every_n_steps=1)], max_steps=2).fit(
        PrefixedTiny(), _loader())
    acc = EventAccumulator(logger.log_dir)
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "p-train/loss" in tags  # Lightning's own metrics get the prefix
    # the callback's tags in their TensorBoard group (tag_groups), after the prefix
    assert "p-|g|/grad/global/abs_q50" in tags, sorted(t for t in tags if "abs_q50" in t)
    assert "p-|g|/grad_hist/global/log10_abs" in acc.Tags()["histograms"]  # histograms too


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mid_epoch_resume_on_cuda(tmp_path):
    """Epoch sums come back from a checkpoint on the CPU (Lightning loads with map_location to
    CPU) while the statistics of a CUDA run are CUDA tensors: ``_accumulate`` adds them in place."""
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=3, save_top_k=-1)
    torch.manual_seed(0)
    _trainer(RecordingLogger(), [GradientQuantileCallback(layer_statistics="all", histograms=False), ckpt],
             max_steps=3, enable_checkpointing=True, accelerator="gpu", devices=1).fit(
        Tiny(), _loader())
    logger = RecordingLogger()
    _trainer(logger, [GradientQuantileCallback(layer_statistics="all", histograms=False)], accelerator="gpu",
             devices=1).fit(Tiny(), _loader(), ckpt_path=str(tmp_path / "epoch=0-step=3.ckpt"))
    assert logger.grad_records("grad_epoch/")


# --------------------------------------------------------------------------- grad_segments
@pytest.mark.parametrize("sizes", [(2, 0), (3, 0, 0)])
def test_torch_backend_handles_trailing_empty_segment(sizes):
    """Documented: the numpy and torch backends give the same values, sizes >= 0. The torch
    backend (the one used for every non-CPU gradient) indexes past the end of the sorted values
    for an empty last segment (a CUDA device-side assert on a GPU)."""
    x = torch.tensor([0.5, -2.0, 1e-9])[:sum(sizes)]
    for with_total in (False, True):
        want = segment_statistics(x, sizes, (0.0, 0.5, 1.0), 1e-8, backend="numpy",
                                  with_total=with_total)
        got = segment_statistics(x, sizes, (0.0, 0.5, 1.0), 1e-8, backend="torch",
                                 with_total=with_total)
        torch.testing.assert_close(got, want, equal_nan=True, rtol=0, atol=0)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("with_total", [False, True])
def test_empty_vector_statistics_like_gradient_statistics(backend, with_total):
    """An empty vector (sizes (0,)): every row is gradient_statistics of an empty vector (NaN
    statistics, counts 0), as documented for both backends."""
    want = gradient_statistics_tensor(torch.zeros(0), (0.0, 0.5, 1.0), 1e-8)
    got = segment_statistics(torch.zeros(0), (0,), (0.0, 0.5, 1.0), 1e-8, backend=backend,
                             with_total=with_total)
    assert got.shape == (1 + with_total, want.numel())
    for row in got:
        torch.testing.assert_close(row, want, equal_nan=True, rtol=0, atol=0)


# --------------------------------------------------------------------------------- folding
def test_scale_and_penalize_double_backward_is_refused_or_exact():
    """L = Σ(s·a)² + r/2·Σθ² with s = 2, r = 0.5: ∂L/∂a = 2s²·a + r·a, and the derivative of
    Σ ∂L/∂a_i with respect to a_j is 2s² + r = 8.5. The class says "Not twice differentiable", so
    it must either raise or be exact, never silently drop the r term."""
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor([3.0], requires_grad=True)
    scaled_a, scaled_b, penalty = ScaleAndPenalize.apply([2.0, 1.0], 0.5, a, b)
    loss = (scaled_a ** 2).sum() + (scaled_b ** 2).sum() + penalty
    grad, = torch.autograd.grad(loss, a, create_graph=True)
    assert grad.tolist() == pytest.approx([8.5, 17.0])
    try:
        second, = torch.autograd.grad(grad.sum(), a)
    except RuntimeError:
        return  # refused: acceptable
    assert second.tolist() == pytest.approx([8.5, 8.5])


def test_scale_and_penalize_leaves_the_incoming_gradient_unchanged():
    """With a single parameter, backward scaled the upstream gradient tensor in place: the
    caller's ``gradient`` argument and a hook's captured gradient were multiplied by s."""
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    scaled, _ = ScaleAndPenalize.apply([2.0], 0.0, a)
    seen = []
    scaled.register_hook(seen.append)
    upstream = torch.tensor([1.0, 1.0])
    scaled.backward(upstream)
    assert a.grad.tolist() == [2.0, 2.0]
    assert upstream.tolist() == [1.0, 1.0]
    assert seen[0].tolist() == [1.0, 1.0]


def test_shared_layer_penalty_counts_each_parameter_once():
    """run_folded_penalized documents r/2·Σθ² over the affine layers' weights and biases θ; a
    layer applied twice has one set of parameters (the modules' own l2_penalty over
    ``named_parameters`` counts them once)."""
    torch.manual_seed(0)
    layer = nn.Linear(3, 3)
    _, penalty = run_folded_penalized([layer, layer], torch.randn(2, 3), r=0.1)
    want = 0.05 * sum(float((p.double() ** 2).sum()) for p in layer.parameters())
    assert penalty.item() == pytest.approx(want, rel=1e-6)
    assert math.isfinite(penalty.item())


class StopAt(pl.Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            trainer.should_stop = True


def test_early_stop_logs_the_last_step_like_lightning(tmp_path):
    """Lightning writes the metrics of the step at which training stops even off the logging
    interval; the callback logs that step's gradient statistics too (here step 2 of every 5)."""
    recorder, logger = GradRecorder(), TensorBoardLogger(tmp_path, name="stop", version=0)
    torch.manual_seed(0)
    _trainer(logger, [GradientQuantileCallback(layer_statistics="all", histograms=False), recorder, StopAt(3)],
             log_every_n_steps=5).fit(Tiny(), _loader())
    ea = EventAccumulator(logger.log_dir)
    ea.Reload()
    tag = tensorboard_tag("grad/global/l2_norm")
    assert [e.step for e in ea.Scalars(tag)] == [2]
    want = _norm(recorder.steps[2])
    assert ea.Scalars(tag)[0].value == pytest.approx(want, rel=1e-6)


def test_bf16_parameters_are_scaled_with_one_rounding():
    """A bf16 weight times 1/α: the fused path multiplies by the float32 scale and rounds once,
    as ``weight * (1 / alpha)`` with a Python float does (α = 3: 1/3 is not a bf16 number)."""
    torch.manual_seed(0)
    w = torch.randn(50).bfloat16().requires_grad_()
    scaled, _ = ScaleAndPenalize.apply([1.0 / 3.0], 0.0, w)
    assert torch.equal(scaled, w.detach() * (1.0 / 3.0))
