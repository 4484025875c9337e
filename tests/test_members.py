"""num_members: S seeds trained at once equal S separate runs (init, data order, loss, l2, Adam),
log like separate runs, and refuse what would couple them; the speed paths keep the maths."""
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_sig import CIFAR10DataModule, CombinedNet, ManyLayersNet
from lightning_sig.lightning.cli import main
from lightning_sig.lightning.data import EpochSeededSampler
from lightning_sig.members.networks import check_member_trainer, member_l2_penalty
from lightning_sig.nn.convnets import TABLE2, SigmoidConvNet, init_parameters
from lightning_sig.lightning.modules import l2_penalty
from lightning_sig.gradients.tag_groups import canonical_tag, tensorboard_tag
from tests.tolerances import assert_close_scaled, reduction_ulps

ROOT = Path(__file__).resolve().parents[1]
# The tests comparing two float32 code paths (members vs single kernels, folded vs layer by layer,
# channels_last vs NCHW): .ci/run reruns them under each ATEN_CPU_CAPABILITY. The rest compare
# exact values or logged scalars of one path.
NUMERICS = pytest.mark.numerics
ARMS = {  # the cases: tanh, α-scaled, r > 0, relu (+ learnable α), the paper's init
    "tanh": dict(activation="tanh"),
    "tanh_alpha2": dict(activation="tanh", alpha=2.0),
    "tanh_r": dict(activation="tanh", l2_strength=0.01),
    "relu": dict(activation="relu"),
    "learnable_alpha_r": dict(activation="tanh", alpha=2.0, learnable_alpha=True, l2_strength=0.05),
}
# Float tolerance, not bits: grouped kernels round differently from single ones. With the paper's
# U[-10, 10) init the training is chaotic: two valid float implementations of the SAME separate
# run (oneDNN channels_last vs plain NCHW) are 2e-3 apart after 2 steps (measured). So the paper
# init is compared over 3 steps, and the long check (2 epochs, each member its own new order in
# epoch 2) uses a well-conditioned init N(0, 0.5²), where a wrong order, init or Adam state
# would differ by ~lr = 1e-3 and rounding stays below 1e-5.
NORMAL = dict(init="normal", init_scale=0.5)
CASES = [(arm, 3, [1]) for arm in ARMS] + [
    ("remedies_normal_init", 8, [1]), ("relu_r_normal_init", 8, [0])]
ARMS.update(remedies_normal_init=dict(ARMS["learnable_alpha_r"], **NORMAL),
            relu_r_normal_init=dict(activation="relu", l2_strength=0.01, **NORMAL))


def _trainer(steps, **kwargs):
    kwargs.setdefault("logger", False)
    return pl.Trainer(max_steps=steps, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, **kwargs)


def _separate_run(seed, hparams, data_dir, steps=6, **trainer_kwargs):
    """What a separate run with seed s is: seed_everything(s), build the module, fit."""
    pl.seed_everything(seed)
    module = CombinedNet(**hparams)
    _trainer(steps, **trainer_kwargs).fit(module, CIFAR10DataModule(str(data_dir), batch_size=32))
    return module


# numerics: the 3-step cases (the chaotic paper init, where rounding matters most); the two
# 8-step well-conditioned ones check data order and Adam state, not rounding, and run once.
@pytest.mark.parametrize("arm,steps,checked", [
    pytest.param(*case, marks=NUMERICS if case[1] == 3 else ()) for case in CASES])
def test_member_ends_with_parameters_of_separate_run(arm, steps, checked, fake_cifar):
    # 100 images, batch 32: 4 steps per epoch; 8 steps run two epochs (two orders per member).
    hparams = ARMS[arm]
    pl.seed_everything(3)
    members = CombinedNet(**hparams, num_members=2)
    assert members.member_seeds == [3, 4]
    _trainer(steps, limit_val_batches=0).fit(members,
                                             CIFAR10DataModule(str(fake_cifar), batch_size=32))
    for s in checked:
        single = _separate_run(members.member_seeds[s], hparams, fake_cifar, steps,
                               limit_val_batches=0)
        got = members.net.member_state_dict(s)
        for name, want in single.net.state_dict().items():
            torch.testing.assert_close(got[name], want, rtol=1e-5, atol=1e-5,
                                       msg=lambda m, name=name: f"{name}: {m}")
    # the members really trained apart: their parameters differ
    assert not torch.allclose(members.net.features[0].weight[0], members.net.features[0].weight[1])


@NUMERICS
def test_member_gradient_is_its_own_regularized_gradient():
    # Σ_s loss_s: ∂/∂θ_s is member s's own gradient of CE_s + r/2·Σθ_s² (Sec. 2.2), learnable α too.
    torch.manual_seed(0)
    hparams = dict(activation="tanh", alpha=2.0, learnable_alpha=True, l2_strength=0.3,
                   init="normal", init_scale=0.5)
    members = ManyLayersNet(**hparams, num_members=3, member_seeds=[7, 1, 5])
    x, y = torch.rand(3, 4, 3, 32, 32), torch.randint(0, 10, (3, 4))
    loss = members.training_step((x, y), 0)
    loss.backward()
    grad_ulps = reduction_ulps(48, stages=28) + reduction_ulps(4 * 3 * 32 * 32)
    total = 0.0
    for s in range(3):
        single = ManyLayersNet(**hparams)
        single.net.load_state_dict(members.net.member_state_dict(s))
        theta = single.penalized_parameters()
        own = F.cross_entropy(single.net(x[s]), y[s]) + 0.15 * sum((p ** 2).sum() for p in theta)
        own.backward()
        total += own.item()
        # grouped (member) kernels vs the single network's: two float32 orders of the same
        # gradient; Table 2's 14 affine layers (dot products <= 48 terms), the backward twice the
        # chain, θ and α gradients summed over a layer's 4·3·32·32 entries. Per tensor, scaled
        # by max|expected| (instead of a bare atol 1e-5). A learnable α's gradient is one scalar
        # sum over its layer's entries that may nearly cancel: it is scaled by the largest α
        # gradient of the network (sums of as many terms of the same kind), not by itself.
        alpha_scale = max(float(p.grad.abs()) for n, p in single.named_parameters()
                          if n.endswith("log_alpha"))
        for (name, p), q in zip(single.named_parameters(), members.parameters()):
            assert_close_scaled(q.grad[s], p.grad, ulps=grad_ulps, msg=name,
                                scale=alpha_scale if name.endswith("log_alpha") else None)
        # shared input (validation): member s's logits are its own network's
        assert_close_scaled(members(x[0])[s], single(x[0]), ulps=reduction_ulps(48, stages=14),
                            msg="logits")
    assert loss.item() == pytest.approx(total, rel=1e-5)


@NUMERICS
def test_member_l2_penalty_hand_computed():
    params = [torch.full((2, 3, 4), 0.5), torch.tensor([[1.0, -2.0], [3.0, 0.0]])]
    # member 0: 12·0.25 + 1 + 4 = 8; member 1: 3 + 9 = 12; times r/2 = 0.05
    torch.testing.assert_close(member_l2_penalty(params, 0.1), torch.tensor([0.4, 0.6]))
    assert l2_penalty([p[1] for p in params], 0.1).item() == pytest.approx(0.6)
    torch.testing.assert_close(member_l2_penalty(params, 0.0), torch.zeros(2))


def test_member_batches_follow_each_seeds_epoch_order(fake_cifar):
    seeds = [11, 2, 40]
    dm = CIFAR10DataModule(str(fake_cifar), batch_size=32, member_seeds=seeds)
    dm.setup("fit")
    loader = dm.train_dataloader()
    for epoch in (0, 1):
        loader.batch_sampler.sampler.set_epoch(epoch)  # what Lightning calls
        batches = list(loader)
        shapes = [tuple(b[0].shape) for b in batches]
        assert shapes == [(3, 32, 3, 32, 32)] * 3 + [(3, 4, 3, 32, 32)]
        for x, _ in batches:  # memory image-major (b, S, C, H, W): the grouped layout, no copy
            grouped = x.transpose(0, 1).reshape(x.shape[1], 3 * 3, 32, 32)
            assert x.transpose(0, 1).is_contiguous() and grouped.data_ptr() == x.data_ptr()
        for s, seed in enumerate(seeds):
            sampler = EpochSeededSampler(100, seed)
            sampler.set_epoch(epoch)
            order = torch.tensor(list(sampler))
            torch.testing.assert_close(torch.cat([b[1][s] for b in batches]),
                                       dm.train_set.labels[order])
            torch.testing.assert_close(torch.cat([b[0][s] for b in batches]),
                                       dm.train_set.images[order].float() / 255)


def test_cli_member_init_is_seed_everything_init(fake_cifar, tmp_path):
    base = ["--config", str(ROOT / "configs/fig3_combined/tanh_reg_scaled.yaml"),
            "--data.data_dir", str(fake_cifar), "--trainer.logger", "false"]
    members = main(base + ["--seed_everything", "3", "--model.init_args.num_members", "2"],
                   run=False).model
    single = main(base + ["--seed_everything", "4"], run=False).model
    assert members.hparams.member_seeds == [3, 4]
    for name, want in single.net.state_dict().items():
        torch.testing.assert_close(members.net.member_state_dict(1)[name], want, rtol=0, atol=0)


def _scalars(directory):
    acc = EventAccumulator(str(directory))
    acc.Reload()
    return {canonical_tag(t): [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def test_member_run_directory_reads_like_separate_run(fake_cifar, tmp_path):
    hparams = dict(activation="tanh", alpha=2.0, l2_strength=0.01)
    logs = dict(log_every_n_steps=2, limit_val_batches=1)
    pl.seed_everything(5)
    members = CombinedNet(**hparams, num_members=2, member_log_dir="{save_dir}/{name}/seed_{seed}")
    _trainer(8, logger=TensorBoardLogger(tmp_path, name="fig/arm", version="members"), **logs).fit(
        members, CIFAR10DataModule(str(fake_cifar), batch_size=32))
    _separate_run(6, hparams, fake_cifar, steps=8, **logs,
                  logger=TensorBoardLogger(tmp_path, name="ref", version="seed_6"))
    got, want = _scalars(tmp_path / "fig/arm/seed_6"), _scalars(tmp_path / "ref/seed_6")
    assert (tmp_path / "fig/arm/seed_5").is_dir()
    assert set(want) - {"hp_metric"} == set(got) >= {"train/loss", "train/acc", "val/acc", "epoch"}
    for tag, points in got.items():
        assert [s for s, _ in points] == [s for s, _ in want[tag]], tag
        assert [v for _, v in points] == pytest.approx([v for _, v in want[tag]], rel=1e-4), tag
    assert [s for s, _ in got["train/loss"]] == [1, 3, 5, 7]  # log_every_n_steps = 2
    assert [s for s, _ in got["val/acc"]] == [3, 7]  # end of each 4-step epoch


def test_checkpoint_restores_members(tmp_path):
    members = CombinedNet(num_members=3, member_seeds=[9, 8, 7], learnable_alpha=True)
    trainer = pl.Trainer(max_steps=0, logger=False, enable_checkpointing=False)
    trainer.strategy.connect(members)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    restored = CombinedNet.load_from_checkpoint(tmp_path / "m.ckpt")
    assert restored.member_seeds == [9, 8, 7] and restored.num_members == 3
    for name, want in members.state_dict().items():
        torch.testing.assert_close(restored.state_dict()[name], want, rtol=0, atol=0)


def test_global_norm_clipping_is_refused(fake_cifar):
    members = CombinedNet(num_members=2)
    with pytest.raises(ValueError, match="gradient_clip_val=1.0 with gradient_clip_algorithm="
                                         "'norm' would couple the 2 members"):
        _trainer(2, gradient_clip_val=1.0).fit(members, CIFAR10DataModule(str(fake_cifar)))

    class Value:  # coordinatewise clipping does not couple members
        gradient_clip_val, gradient_clip_algorithm, world_size = 1.0, "value", 1
    check_member_trainer(Value(), 2)


def test_plain_batches_are_refused_for_members():
    members = CombinedNet(num_members=2)
    with pytest.raises(ValueError, match=r"num_members=2 needs member batches \(S, B, C, H, W\), "
                                         r"got shape \(4, 3, 32, 32\)"):
        members.training_step((torch.rand(4, 3, 32, 32), torch.zeros(4, dtype=torch.long)), 0)


@pytest.mark.parametrize("kwargs,match", [
    ({"num_members": 0}, "num_members must be an integer >= 1, got 0"),
    ({"num_members": True}, "num_members must be an integer >= 1, got True"),
    ({"num_members": 2.0}, "num_members must be an integer >= 1, got 2.0"),
    ({"num_members": 2, "member_seeds": [1]},
     r"member_seeds must be 2 distinct integers >= 0 .*\[1\]"),
    ({"num_members": 2, "member_seeds": [1, 1]}, r"distinct .* got \[1, 1\]"),
    ({"num_members": 2, "member_seeds": [1, -2]}, r"got \[1, -2\]"),
    ({"member_seeds": [4]}, r"member_seeds=\[4\] needs num_members > 1"),
    ({"num_members": 2, "member_log_dir": "{log_dir}/m"}, "must contain {seed} or {member}"),
    ({"num_members": 2, "member_log_dir": "{logdir}/{seed}"}, "valid placeholders: {log_dir}"),
])
def test_bad_member_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CombinedNet(**kwargs)


@NUMERICS
def test_channels_last_path_equals_nchw_path():
    # CPU speed path (models.preferred_memory_format): same values and gradients as plain NCHW.
    torch.manual_seed(0)
    module = CombinedNet(activation="tanh", alpha=2.0, init="default")
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    grads = []
    for mkldnn in (True, False):  # without oneDNN the net runs NCHW (contiguous_format)
        module.zero_grad()
        with torch.backends.mkldnn.flags(enabled=mkldnn):
            F.cross_entropy(module(x), y).backward()
        grads.append([p.grad.clone() for p in module.parameters()])
    # oneDNN channels_last vs NCHW kernels: two float32 orders; Table 3's 10 affine layers (dot
    # products <= 48 terms), backward twice the chain, weight gradients summed over 8·32·32
    # positions; per tensor, scaled by max|expected| (instead of a bare atol 1e-6).
    ulps = reduction_ulps(48, stages=20) + reduction_ulps(8 * 32 * 32)
    for (name, _), fast, plain in zip(module.named_parameters(), *grads):
        assert_close_scaled(fast, plain, ulps=ulps, msg=name)


def test_single_network_logs_only_logging_steps_with_lightning_values(fake_cifar, tmp_path):
    # train/* written at Lightning's log_every_n_steps steps (as before the speed change), with
    # the values of that step: l2 term = r/2·Σθ² of the parameters the step started from.
    class Snapshot(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.global_step == 2:
                self.theta = [p.detach().clone() for p in module.penalized_parameters()]

    snapshot = Snapshot()
    pl.seed_everything(2)
    module = CombinedNet(activation="tanh", l2_strength=0.01)
    _trainer(5, logger=TensorBoardLogger(tmp_path, name="r", version="v"), log_every_n_steps=3,
             limit_val_batches=0, callbacks=[snapshot]).fit(
        module, CIFAR10DataModule(str(fake_cifar), batch_size=32))
    got = _scalars(tmp_path / "r/v")
    for tag in ("train/loss", "train/data_loss", "train/l2_penalty", "train/acc"):
        assert [s for s, _ in got[tag]] == [2], tag
    penalty = 0.005 * sum((p.double() ** 2).sum().item() for p in snapshot.theta)
    assert got["train/l2_penalty"][0][1] == pytest.approx(penalty, rel=1e-5)
    data_loss = got["train/data_loss"][0][1]
    assert got["train/loss"][0][1] == pytest.approx(data_loss + penalty, rel=1e-5)
    assert got["train/acc"][0][1] in [k / 32 for k in range(33)]


@NUMERICS
@pytest.mark.parametrize("hparams", [dict(activation="tanh", alpha=3.0),
                                     dict(activation="arctan", alpha=0.7, learnable_alpha=True),
                                     dict(activation="sigmoid", alpha=2.0),
                                     dict(activation="relu")])
def test_folded_forward_equals_layer_by_layer(hparams):
    # models.run_folded moves α onto the weights: same logits and gradients (θ and α) as
    # applying f_α(z) = α·f(z/α) layer by layer (eq. 1).
    torch.manual_seed(0)
    net = SigmoidConvNet(TABLE2, **hparams)
    init_parameters(net, "normal", 0.3)
    with torch.no_grad():  # a different learnable α per layer, so the folded ratios are not 1
        for k, act in enumerate(m for m in net.modules() if getattr(m, "learnable_alpha", False)):
            act.log_alpha.fill_(math.log(0.5 + 0.4 * k))
    x = torch.rand(6, 3, 32, 32)
    results = []
    for forward in (net, lambda v: net.classifier(net.features(v))):
        net.zero_grad()
        out = forward(x)
        out.square().sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in net.parameters()]))
    # Two float32 orders of the same function (α on the weights vs on the activations): Table 2
    # chains 14 affine layers whose dot products have <= 48 terms (3·3·3 conv taps, 3·4·4 flat
    # features); the backward doubles the chain and the θ and α gradients then sum over all
    # 6·3·32·32 activation entries of a layer. Scaled per tensor by max|expected| (near-zero
    # coordinates err by the size of their terms; the bare atol 1e-5 failed on AVX-512).
    forward_ulps = reduction_ulps(48, stages=14)
    assert_close_scaled(results[0][0], results[1][0], ulps=forward_ulps, msg="logits")
    grad_ulps = reduction_ulps(48, stages=28) + reduction_ulps(6 * 3 * 32 * 32)
    for (name, _), folded, plain in zip(net.named_parameters(), results[0][1], results[1][1]):
        assert_close_scaled(folded, plain, ulps=grad_ulps, msg=name)


def test_compile_net_compiles_the_network_once_at_setup():
    # compile_net=True calls nn.Module.compile (same state_dict keys) once; default: never.
    calls = []
    for flag, expected in ((True, [1]), (False, [])):
        calls.clear()
        module = CombinedNet(compile_net=flag)
        module.net.compile = lambda: calls.append(1)
        module.setup("fit")
        module.setup("validate")
        assert calls == expected
