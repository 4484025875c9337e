"""The LightningModules: regularized objective CE + r/2·Σθ² (Sec. 2.2), hyperparameters, errors."""
import math

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from lightning_sig import CombinedNet, LargeParamsNet, ManyLayersNet
from tests.tolerances import assert_close_scaled, reduction_ulps

pytestmark = pytest.mark.numerics  # .ci/run reruns these under each ATEN_CPU_CAPABILITY


def _batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("cls", [LargeParamsNet, ManyLayersNet, CombinedNet])
@pytest.mark.parametrize("r", [0.0, 0.01, 0.5])
@pytest.mark.parametrize("learnable", [False, True])
def test_gradient_is_that_of_regularized_objective(cls, r, learnable):
    torch.manual_seed(1)
    module = cls(activation="tanh", alpha=2.0, learnable_alpha=learnable, l2_strength=r,
                 backend="torch")  # the torch path; the fused one: tests/test_fused.py
    x, y = _batch()
    loss = module.training_step((x, y), 0)
    loss.backward()
    got = {n: p.grad.clone() for n, p in module.named_parameters()}

    module.zero_grad()
    # By hand: every weight and bias of every conv and linear layer, α excluded.
    theta = [p for m in module.net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
             for p in (m.weight, m.bias)]
    hand = F.cross_entropy(module.net(x), y) + r / 2 * sum((p**2).sum() for p in theta)
    hand.backward()
    assert loss.item() == pytest.approx(hand.item(), rel=1e-6)
    # training_step (folded α, fused l2 term) vs the layer-by-layer objective: the same gradient
    # in two float32 orders. <= 14 affine layers (Table 2), dot products <= 48 terms, backward
    # twice the chain, θ and α gradients summed over the 8·3·32·32 entries of a layer; scaled per
    # tensor by max|expected| (the bare atol 1e-7 was below a near-zero entry's rounding).
    ulps = reduction_ulps(48, stages=28) + reduction_ulps(8 * 3 * 32 * 32)
    for n, p in module.named_parameters():
        assert_close_scaled(got[n], p.grad, ulps=ulps, msg=n)
    assert len(got) == len(theta) + (module.net.spec.blocks * module.net.spec.convs_per_block
                                     + len(module.net.spec.hidden) if learnable else 0)


def test_penalty_value_hand_computed():
    module = LargeParamsNet(l2_strength=0.2)
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(0.5)
    n = sum(p.numel() for p in module.parameters())  # 6·84 + 392 + 90 = 986
    assert n == 986
    penalty = 0.1 * n * 0.25
    from lightning_sig.lightning.modules import l2_penalty
    assert l2_penalty(module.penalized_parameters(), 0.2).item() == pytest.approx(penalty)


@pytest.mark.parametrize("cls,init,scale", [(LargeParamsNet, "uniform", 10.0),
                                            (ManyLayersNet, "normal", 0.05),
                                            (CombinedNet, "uniform", 10.0)])
def test_paper_init_per_table(cls, init, scale):
    module = cls()
    # "paper" is resolved before save_hyperparameters: checkpoints record the scheme used.
    assert (module.hparams.init, module.hparams.init_scale) == (init, scale)
    flat = torch.cat([p.detach().flatten() for p in module.parameters()])
    if init == "uniform":
        assert flat.abs().max() <= scale and flat.abs().max() > 0.9 * scale
    else:
        assert flat.std().item() == pytest.approx(scale, rel=0.15)


@pytest.mark.parametrize("kwargs,match", [
    ({"l2_strength": -0.1}, r"l2_strength \(r\) must be a finite number >= 0, got -0.1"),
    ({"l2_strength": float("nan")}, "got nan"),
    ({"lr": 0.0}, "lr must be a finite number > 0, got 0.0"),
    ({"adam_eps": 0.0}, "adam_eps must be a finite number > 0, got 0.0"),
    ({"activation": "swish"}, "Unknown activation family 'swish'"),
    ({"alpha": 0.0}, "alpha must be a finite number > 0, got 0.0"),
    ({"alpha": "2"}, "got '2'"),
    ({"init": "xavier"}, "Unknown init scheme 'xavier'"),
    ({"init": "uniform", "init_scale": -2.0}, "init_scale must be a finite number > 0, got -2.0"),
])
def test_bad_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CombinedNet(**kwargs)


@pytest.mark.parametrize("kwargs,eps", [({}, 1e-8), ({"adam_eps": 1e-7}, 1e-7)])
def test_adam_eps_reaches_the_optimizer_and_the_hyperparameters(kwargs, eps):
    module = CombinedNet(**kwargs)
    optimizer = module.configure_optimizers()
    assert [g["eps"] for g in optimizer.param_groups] == [eps]
    assert [g["lr"] for g in optimizer.param_groups] == [1e-3]
    assert module.hparams.adam_eps == eps


def test_checkpoint_restores_hyperparameters_and_learned_alpha(tmp_path):
    module = CombinedNet(activation="arctan", alpha=3.0, learnable_alpha=True, l2_strength=0.02,
                         init="normal", init_scale=0.1, lr=5e-3)
    with torch.no_grad():
        module.net.features[1].log_alpha.fill_(math.log(4.0))
    trainer = pl.Trainer(max_steps=0, logger=False, enable_checkpointing=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    restored = CombinedNet.load_from_checkpoint(tmp_path / "m.ckpt")
    assert dict(restored.hparams) == dict(module.hparams)
    assert restored.l2_strength == 0.02 and restored.lr == 5e-3
    assert restored.net.features[1].alpha == pytest.approx(4.0)
    assert restored.net.features[1].family == "arctan"


def test_lightning_hook_fast_path_keeps_behaviour():
    """``_current_fx_name`` (set by Lightning around every hook) bypasses nn.Module.__setattr__
    but reads back the same."""
    from lightning_sig import CombinedNet
    module = CombinedNet(init="default")
    module._current_fx_name = "training_step"
    assert module._current_fx_name == "training_step" and "_current_fx_name" in module.__dict__
    module._current_fx_name = None
    assert module._current_fx_name is None
    module.some_setting = 3  # other attributes still go through nn.Module
    assert module.some_setting == 3 and "some_setting" in module.__dict__


def test_skip_failing_nvml_check_only_without_nvml(monkeypatch):
    import lightning_sig.speedups as modules
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    monkeypatch.setattr(modules, "_nvml_loadable", lambda: True)
    assert modules.skip_failing_nvml_check() is False
    import os
    assert os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] == "1"
    monkeypatch.setattr(modules, "_nvml_loadable", lambda: False)
    assert modules.skip_failing_nvml_check() is True
    assert "PYTORCH_NVML_BASED_CUDA_CHECK" not in os.environ
