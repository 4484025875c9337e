"""Issue 11: the large-model path (sorted float bits), the epoch-means step subset and the
data-loss gradient ``grad_data/*``."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lightning_sig import CombinedNet, GradientQuantileCallback
from lightning_sig.gradients.epoch_steps import check_budget, epoch_step_interval
from lightning_sig.gradients.quantile_engine import table_statistics
from lightning_sig.gradients.stats import gradient_statistics_tensor
from tests.test_grad_callback import RecordingLogger, _fit, _loader, _numpy_stats

LEVELS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.999, 1.0)


def layered_statistics(layers, levels, threshold, signed, with_total, workspace=None):
    """(table, workspace): the statistics of the whole gradient and of each layer from one
    float32 copy in a reusable workspace, as the callback's buffer of a large model."""
    sizes = [sum(t.numel() for t in layer) for layer in layers]
    wide = any(t.dtype == torch.float64 for layer in layers for t in layer)
    if wide:  # float64 is not copied into the float32 workspace
        parts = [t for layer in layers for t in layer]
    else:
        if workspace is None or workspace.size < sum(sizes):
            workspace = np.empty(sum(sizes), np.float32)
        flat = torch.from_numpy(workspace[:sum(sizes)])
        offset = 0
        for t in (t for layer in layers for t in layer):
            flat[offset:offset + t.numel()] = t.reshape(-1).float()
            offset += t.numel()
        parts = [flat]
    table = table_statistics(parts, sizes, levels, threshold, signed=signed,
                             with_total=with_total)[0]
    return table, workspace


def _layers(seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(300, 7, generator=g)
    a[::3] = 0.0  # exact zeros and ties, as ReLU nets have
    b = torch.randn(5, generator=g) * 1e-9  # around the threshold 1e-8
    c = torch.randint(-3, 4, (1001,), generator=g).float()  # many ties
    return [[a.to(dtype), b.to(dtype)], [c.to(dtype)], [torch.randn(1, generator=g).to(dtype)]]


def _reference(layers, signed=False):
    groups = [[t for layer in layers for t in layer]] + layers
    return torch.stack([gradient_statistics_tensor(g, LEVELS, 1e-8, signed) for g in groups])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_layered_statistics_equal_per_vector_path(dtype):
    layers = _layers(dtype=dtype)
    table, workspace = layered_statistics(layers, LEVELS, 1e-8, False, True)
    want = _reference(layers)
    q = len(LEVELS)
    assert torch.equal(table[:, :q], want[:, :q])  # quantiles bitwise (numpy "linear")
    torch.testing.assert_close(table[:, q:], want[:, q:], rtol=1e-12, atol=0)
    assert workspace.dtype == np.float32 and workspace.size >= 2106
    again, same = layered_statistics(layers, LEVELS, 1e-8, False, True, workspace)
    assert same is workspace and torch.equal(again, table)  # workspace reused, values kept


def test_layered_statistics_against_numpy_and_without_total():
    layers = _layers(1)
    table, _ = layered_statistics(layers, (0.5,), 1e-8, False, False)
    for row, layer in zip(table.tolist(), layers):
        vec = np.concatenate([t.numpy().ravel() for t in layer]).astype(np.float64)
        a = np.abs(vec)
        assert row[0] == np.quantile(a, 0.5)
        assert row[1] == pytest.approx(a.mean(), rel=1e-12)
        assert row[3] == pytest.approx(math.sqrt((a ** 2).sum()), rel=1e-12)
        assert row[4] == (a <= 1e-8).mean() and row[5:] == [0.0, vec.size]


@pytest.mark.parametrize("case", ["nonfinite", "signed", "empty_layer"])
def test_layered_statistics_fallbacks_give_same_values(case):
    layers = _layers(2)
    signed = case == "signed"
    if case == "nonfinite":
        layers[1][0][[3, 7]] = torch.tensor([math.nan, -math.inf])
    if case == "empty_layer":
        layers.insert(1, [torch.zeros(0)])
    table, _ = layered_statistics(layers, LEVELS, 1e-8, signed, True)
    torch.testing.assert_close(table, _reference(layers, signed), rtol=1e-12, atol=0,
                               equal_nan=True)


def test_epoch_step_interval_closed_cases():
    budget = 1 << 18
    assert epoch_step_interval(1454, 50, budget) == 1  # the paper's nets: every step
    assert epoch_step_interval(11_181_642, 50, budget) == 50  # ceil(N/B) = 43 -> a multiple of 50
    assert epoch_step_interval(11_181_642, 20, budget) == 60
    assert epoch_step_interval(11_181_642, 1, budget) == 43
    assert epoch_step_interval(1_000_000, 50, budget) == 5  # ceil = 4 -> divisor 5 of 50
    assert epoch_step_interval(11_181_642, 50, None) == 1
    assert check_budget(None) is None and check_budget(7) == 7
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(ValueError, match="epoch_budget_numel"):
            check_budget(bad)
    with pytest.raises(ValueError, match="epoch_budget_numel"):
        GradientQuantileCallback(epoch_budget_numel=0)


def test_epoch_means_over_every_kth_step_under_budget(tmp_path):
    torch.manual_seed(0)
    model = CombinedNet(init="default")  # 1,130 coordinates; budget 300 -> k = 4 with n = 2
    callback = GradientQuantileCallback(log_every_n_steps=2, epoch_budget_numel=300)
    logger, recorder = _fit(model, callback, tmp_path, max_epochs=1)
    assert [s for s, _ in logger.grad_records()] == [1, 3]
    (step, epoch), = logger.grad_records("grad_epoch/")
    vec = np.concatenate([g.flatten().numpy() for g in recorder.steps[3].values()])
    want = _numpy_stats(vec)  # the only step used: (3 + 1) % 4 == 0
    for key in ("abs_q50", "l2_norm", "vanishing_frac"):
        assert epoch[f"grad_epoch/global/{key}"] == pytest.approx(want[key], rel=1e-9)
    (_, steps), = logger.grad_records("grad_epoch_steps/")
    assert steps == {"grad_epoch_steps/global/every_k": 4.0, "grad_epoch_steps/global/count": 1.0}


@pytest.mark.parametrize("big_path", [False, True])
def test_data_gradient_equals_autograd_of_data_loss(tmp_path, big_path, monkeypatch):
    from lightning_sig.lightning import grad_sources as gather_module
    if big_path:
        monkeypatch.setattr(gather_module, "FLAT_MAX_NUMEL", 10)
    torch.manual_seed(0)
    r = 0.5
    model = CombinedNet(alpha=2.0, l2_strength=r, init="default")
    fresh = CombinedNet(alpha=2.0, l2_strength=r, init="default")
    fresh.load_state_dict(model.state_dict())
    logger, recorder = _fit(model, GradientQuantileCallback(), tmp_path, max_steps=1)
    x, y = next(iter(_loader()))
    params = dict(fresh.named_parameters())
    data = torch.autograd.grad(F.cross_entropy(fresh(x), y), list(params.values()))
    (step, metrics), = [(s, m) for s, m in logger.grad_records("grad_data/")]
    theta = np.concatenate([p.detach().double().numpy().ravel() for p in params.values()])
    # g − r·θ in float32 differs from ∇CE by the roundings of g and r·θ: ≤ 2 ulp(|g| + r|θ|)
    tol = 4 * np.finfo(np.float32).eps * (r * np.abs(theta).max() + 1.0)
    vec = np.concatenate([d.double().numpy().ravel() for d in data])
    for key in ("abs_q0", "abs_q25", "abs_q50", "abs_q75", "abs_q100", "abs_mean", "rms"):
        assert metrics[f"grad_data/global/{key}"] == pytest.approx(_numpy_stats(vec)[key],
                                                                   abs=tol, rel=0), key
    layer = np.concatenate([d.double().numpy().ravel() for n, d in zip(params, data)
                            if n.startswith("net.features.0.")])
    assert metrics["grad_data/net.features.0/abs_q50"] == pytest.approx(
        np.quantile(np.abs(layer), 0.5), abs=tol, rel=0)
    total = logger.grad_records()[0][1]  # the total gradient's statistics are still there
    assert total["grad/global/abs_q50"] != metrics["grad_data/global/abs_q50"]
    assert "grad_data_epoch/global/abs_q50" in logger.grad_records("grad_data_epoch/")[0][1]


def test_no_data_gradient_without_penalty_or_when_off(tmp_path):
    for model, kwargs in ((CombinedNet(init="default"), {}),
                          (CombinedNet(l2_strength=0.1, init="default"), {"data_gradient": False})):
        logger, _ = _fit(model, GradientQuantileCallback(**kwargs), tmp_path, max_steps=2)
        assert logger.grad_records() and not logger.grad_records("grad_data/")
