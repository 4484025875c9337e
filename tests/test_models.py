"""Parameter counts of the paper's Tables 1–3 and the initialisation schemes (Sec. 3)."""
import pytest
import torch
from torch import nn

from lightning_sig import TABLE1, TABLE2, TABLE3, SigmoidConvNet, init_parameters

pytestmark = pytest.mark.numerics  # .ci/run reruns these under each ATEN_CPU_CAPABILITY


def _dense(net):
    return [m for m in net.classifier if isinstance(m, nn.Linear)]


def _convs(net):
    return [m for m in net.features if isinstance(m, nn.Conv2d)]


def test_table1_dense_counts_weights_plus_biases():
    net = SigmoidConvNet(TABLE1)
    assert [m.weight.numel() + m.bias.numel() for m in _dense(net)] == [392, 90]


@pytest.mark.parametrize("spec,weights", [(TABLE2, [384, 64, 64, 64, 80]), (TABLE3, [384, 64, 64, 80])])
def test_tables_2_3_dense_counts_weights_only(spec, weights):
    assert [m.weight.numel() for m in _dense(SigmoidConvNet(spec))] == weights


@pytest.mark.parametrize("spec,n_convs", [(TABLE1, 6), (TABLE2, 9), (TABLE3, 6)])
def test_conv_layers_3x3_three_channels(spec, n_convs):
    convs = _convs(SigmoidConvNet(spec))
    assert len(convs) == n_convs
    assert all(c.weight.shape == (3, 3, 3, 3) and c.bias.numel() == 3 for c in convs)
    assert all(c.padding == (1, 1) for c in convs)


@pytest.mark.parametrize("spec", [TABLE1, TABLE2, TABLE3])
def test_one_activation_after_every_conv_and_hidden_dense(spec):
    net = SigmoidConvNet(spec, "tanh", 2.0)
    acts = [m for m in net.modules() if type(m).__name__ == "ScaledActivation"]
    assert len(acts) == spec.blocks * spec.convs_per_block + len(spec.hidden)
    assert all(a.alpha == 2.0 for a in acts)
    assert net(torch.zeros(4, 3, 32, 32)).shape == (4, 10)
    assert isinstance(net.classifier[-1], nn.Linear)  # logits, no activation after the output


def test_uniform_init_range_weights_and_biases():
    torch.manual_seed(0)
    net = SigmoidConvNet(TABLE2)
    init_parameters(net, "uniform", 10.0)
    flat = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert flat.min() >= -10 and flat.max() < 10
    assert flat.abs().max() > 9.5  # 1454 draws: spread over the whole interval
    assert flat.std().item() == pytest.approx(20 / 12**0.5, rel=0.1)


def test_normal_init_std_and_zero_bias():
    torch.manual_seed(0)
    net = SigmoidConvNet(TABLE2)
    init_parameters(net, "normal", 0.05, zero_bias=True)
    weights = torch.cat([m.weight.detach().flatten() for m in _dense(net) + _convs(net)])
    assert weights.std().item() == pytest.approx(0.05, rel=0.1)
    assert all(torch.all(m.bias == 0) for m in _dense(net) + _convs(net))


def test_learnable_alpha_untouched_by_init():
    net = SigmoidConvNet(TABLE1, "tanh", 3.0, learnable_alpha=True)
    init_parameters(net, "uniform", 10.0)
    alphas = [m.alpha for m in net.modules() if type(m).__name__ == "ScaledActivation"]
    assert alphas == pytest.approx([3.0] * 7)


@pytest.mark.parametrize("scheme,scale,match", [
    ("xavier", 1.0, "Unknown init scheme 'xavier'; valid: uniform, normal, default"),
    ("uniform", 0.0, "init_scale must be a finite number > 0, got 0.0"),
    ("normal", -1.0, "got -1.0"),
    ("uniform", float("nan"), "got nan"),
])
def test_bad_init_raises(scheme, scale, match):
    with pytest.raises(ValueError, match=match):
        init_parameters(SigmoidConvNet(TABLE1), scheme, scale)
