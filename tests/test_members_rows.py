"""member_gradient_rows, the vectorised member path of the GradientQuantileCallback: the same
bits as the per-member path (member_layer_gradients / member_data_layers + flatten_gradients),
and a fit logs the same callback scalars with it as without it, in either Lightning namespace."""
import importlib

import pytest
import torch

from lightning_sig import ManyLayersNet
from lightning_sig.gradients.grad_snapshot import GradientSnapshot, flatten_gradients
from lightning_sig.lightning.namespace import lightning_classes
from lightning_sig.members.gradients import member_data_layers, member_gradient_rows, \
    member_layer_gradients
from lightning_sig.members.loggers import MemberLogger

S = 3


def _module_after_backward(l2_strength, case):
    """ManyLayersNet (a MemberConvNet) with S members and learnable α (log_alpha has no
    penalty entry) after one backward; one gradient set to None, one parameter frozen."""
    torch.manual_seed(0)
    module = ManyLayersNet(activation="tanh", alpha=2.0, learnable_alpha=True,
                           l2_strength=l2_strength, num_members=S, backend="torch")
    x, y = torch.rand(S, 2, 3, 32, 32), torch.randint(0, 10, (S, 2))
    module.training_step((x, y), 0).backward()
    params = dict(module.named_parameters())
    params["net.features.0.bias"].grad = None  # trainable, no gradient
    params["net.features.2.weight"].requires_grad_(False)  # frozen, gradient left over
    conv = params["net.features.4.weight"]  # a non-contiguous gradient (S, O, C, kh, kw)
    conv.grad = conv.grad.transpose(1, 2).contiguous().transpose(1, 2)
    assert not conv.grad.is_contiguous()
    if case == "mixed_dtype":  # one float64 parameter: promoted, as flatten_gradients does
        linear = params["net.classifier.9.weight"]
        grad, linear.grad = linear.grad, None
        linear.data = linear.data.double()
        linear.grad = grad.double() * 1.1
    return module


@pytest.mark.parametrize("case", ["float32", "mixed_dtype"])
@pytest.mark.parametrize("l2_strength", [0.01, 0.0])
def test_rows_are_the_bits_of_the_per_member_path(l2_strength, case):
    module = _module_after_backward(l2_strength, case)
    total = module.member_gradient_rows(False)
    both = module.member_gradient_rows(True)
    assert total.data is None and torch.equal(both.rows, total.rows) and both[:3] == total[:3]
    old_total = [GradientSnapshot.of_layers(layers) for layers in member_layer_gradients(module, S)]
    assert total.rows.shape == (S, sum(old_total[0].sizes))
    for s, snap in enumerate(old_total):
        assert (total.names, total.sizes, total.counts) == snap[:3]
        assert torch.equal(total.rows[s], flatten_gradients(snap.grads))
    counts = dict(zip(total.names[1:], total.counts))  # a weight left in each, not its bias
    assert counts["net.features.0"] == counts["net.features.2"] == 1 < counts["net.features.4"]
    assert total.rows.dtype == (torch.float64 if case == "mixed_dtype" else torch.float32)
    if l2_strength == 0:  # no penalty: no data-loss gradient, as member_data_layers
        assert both.data is None and member_data_layers(module, S) == []
        assert member_gradient_rows(module, S, {}).data is None
        return
    old_data = [GradientSnapshot.of_layers(layers) for layers in member_data_layers(module, S)]
    assert len(old_data) == S and all(snap[:3] == old_total[0][:3] for snap in old_data)
    for s, snap in enumerate(old_data):
        assert torch.equal(both.data[s], flatten_gradients(snap.grads))
    assert not torch.equal(both.data, both.rows)
    # the caller's cached (layer, parameter) list gives the same
    cached = [(n.rpartition(".")[0] or "<root>", p) for n, p in module.named_parameters()]
    again = module.member_gradient_rows(True, cached)
    assert again[:3] == both[:3] and torch.equal(again.rows, both.rows)
    assert torch.equal(again.data, both.data)


def test_rows_refuse_unstacked_gradients_and_misshapen_penalties():
    module = _module_after_backward(0.01, "float32")
    with pytest.raises(ValueError, match=r"not \(4, \.\.\.\) for 4 members"):
        member_gradient_rows(module, 4)
    weight = module.net.features[0].weight
    with pytest.raises(ValueError, match="penalty_gradients\\(\\) has shape \\(3, 1\\)"):
        member_gradient_rows(module, S, {weight: torch.zeros(3, 1)})
    torch.nn.Module.zero_grad(module, set_to_none=True)
    assert member_gradient_rows(module, S) is None


class _RecordingMembers(MemberLogger):
    """A member logger keeping every (member, step, scalars) it is given."""

    def __init__(self, seeds):
        super().__init__(seeds)
        self.records = []

    def log(self, member, metrics, step):
        self.records.append((member, step, dict(metrics)))


def _fit_scalars(namespace, data_dir, fast):
    """Callback scalars (member, step, tag → value) of a 2-epoch fit with S members."""
    pl = importlib.import_module(namespace)
    ours = lightning_classes(namespace)
    pl.seed_everything(0)
    module = ours["CombinedNet"](activation="tanh", alpha=2.0, learnable_alpha=True,
                                 l2_strength=0.01, num_members=S)
    calls = []
    if fast:  # count the vectorised calls
        rows = module.member_gradient_rows
        module.member_gradient_rows = lambda *args: calls.append(args[0]) or rows(*args)
    else:  # the per-member path: a module without the optional method
        module.member_gradient_rows = None
    module.member_logger = recorder = _RecordingMembers(module.member_seeds)
    callback = ours["GradientQuantileCallback"](
        layer_statistics="all", log_every_n_steps=1, histogram_every_n_steps=3,
                                                buffer_steps=4)
    trainer = pl.Trainer(max_epochs=2, logger=False, callbacks=[callback], limit_val_batches=0,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0,
                         default_root_dir=str(data_dir))
    trainer.fit(module, ours["CIFAR10DataModule"](str(data_dir), batch_size=20))
    records = [(m, step, {k: v for k, v in metrics.items() if k.startswith("grad")})
               for m, step, metrics in recorder.records]
    return [r for r in records if r[2]], calls


@pytest.mark.parametrize("namespace", ["pytorch_lightning", "lightning.pytorch"])
def test_fit_logs_the_same_scalars_with_the_rows(namespace, fake_cifar):
    fast, calls = _fit_scalars(namespace, fake_cifar, fast=True)
    slow, _ = _fit_scalars(namespace, fake_cifar, fast=False)
    # 10 steps (2 epochs of 5), histograms due at steps 2, 5, 8: the other 7 use the rows
    # (total and data-loss gradient in one call)
    assert calls == [True] * 7
    assert fast == slow
    keys = set().union(*(metrics for _, _, metrics in fast))
    assert {"grad/global/abs_q50", "grad_data/net.features.0/l2_norm",
            "grad_epoch/global/rms", "grad_data_epoch/global/abs_q50"} <= keys
    assert sorted({m for m, _, _ in fast}) == list(range(S))
    assert sorted({step for _, step, m in fast if "grad/global/abs_q50" in m}) == list(range(10))


def test_members_above_the_buffered_size_take_the_per_member_path(fake_cifar, monkeypatch):
    from lightning_sig.lightning import grad_sources
    monkeypatch.setattr(grad_sources, "FLAT_MAX_NUMEL", 10)  # the large-model path
    records, calls = _fit_scalars("pytorch_lightning", fake_cifar, fast=True)
    assert calls == []  # it needs each member's tensors
    keys = set().union(*(metrics for _, _, metrics in records))
    assert {"grad/global/abs_q50", "grad_data/global/abs_q50"} <= keys
