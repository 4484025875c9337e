"""Independent random streams per seed (issue: seeds that shared most of their data orders).

Each stream's seed is derived from (seed, purpose, epoch) by numpy's SeedSequence
(lightning_sig.seeds); the sampler, the members and the single network use the same derivation.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_sig.lightning.data import EpochSeededSampler, epoch_order
from lightning_sig.nn.convnets import TABLE3, SigmoidConvNet, build_initialised_net, init_parameters
from lightning_sig.seeds import PURPOSES, derived_seed

N_TRAIN = 50_000  # CIFAR-10's training set


def test_derived_seed_is_seedsequence_of_the_tuple():
    # the documented derivation, recomputed with numpy directly
    words = np.random.SeedSequence(entropy=3, spawn_key=(2, 5)).generate_state(2, dtype=np.uint32)
    assert derived_seed(3, "data_order", 5) == (int(words[1]) << 32 | int(words[0])) & (2**63 - 1)
    assert PURPOSES == {"init": 1, "data_order": 2}  # renumbering would change every run


def test_750_epoch_orders_of_25_seeds_by_30_epochs_are_distinct():
    orders = {tuple(epoch_order(N_TRAIN, seed, epoch).tolist())
              for seed in range(25) for epoch in range(30)}
    assert len(orders) == 750
    # the old convention (seed + epoch) gave only 25 + 30 - 1 = 54 distinct orders here
    assert len({seed + epoch for seed in range(25) for epoch in range(30)}) == 54


def test_no_stream_of_one_seed_is_another_seeds():
    seeds = [derived_seed(s, "data_order", e) for s in range(25) for e in range(30)]
    seeds += [derived_seed(s, "init") for s in range(25)]
    assert len(set(seeds)) == 25 * 31
    # the init stream is not the stream torch.manual_seed(s) starts (the old init), nor the
    # first shuffle's
    for s in range(25):
        assert derived_seed(s, "init") not in {s, derived_seed(s, "data_order", 0)}


def test_sampler_is_epoch_order_sharded_like_distributed_sampler():
    n, seed, epoch = 103, 11, 4
    order = epoch_order(n, seed, epoch).tolist()
    padded = order + order[:1]  # 103 -> 104 = 2 * 52: DistributedSampler repeats the start
    for rank in (0, 1):
        sampler = EpochSeededSampler(n, seed, num_replicas=2, rank=rank)
        sampler.set_epoch(epoch)
        assert list(sampler) == padded[rank::2] and len(sampler) == 52
    whole = EpochSeededSampler(n, seed)
    whole.set_epoch(epoch)
    assert list(whole) == order and sorted(order) == list(range(n))


def test_initialisation_is_the_init_stream_and_leaves_the_global_rng():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    net = build_initialised_net(TABLE3, "tanh", 2.0, False, "uniform", 10.0, False, seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(derived_seed(7, "init"))
    reference = SigmoidConvNet(TABLE3, "tanh", 2.0, False)
    init_parameters(reference, "uniform", 10.0, False)
    for (name, p), (_, q) in zip(net.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(p, q), name
    other = build_initialised_net(TABLE3, "tanh", 2.0, False, "uniform", 10.0, False, seed=8)
    assert not torch.equal(other.state_dict()["features.0.weight"], net.state_dict()["features.0.weight"])


@pytest.mark.parametrize("scheme,std", [("he_normal", lambda fan_in, fan_out: (2 / fan_in) ** 0.5),
                                        ("glorot_uniform",
                                         lambda fan_in, fan_out: (2 / (fan_in + fan_out)) ** 0.5)])
def test_usual_init_schemes_have_their_fan_rule_and_zero_biases(scheme, std):
    # He normal: std sqrt(2 / fan_in); Glorot uniform: U[-a, a), a = sqrt(6 / (in + out)),
    # std a / sqrt(3) = sqrt(2 / (in + out)). Dense layer 48 -> 8 and convs 27 -> 27 fan.
    net = build_initialised_net(TABLE3, "tanh", 1.0, False, scheme, 1.0, False, seed=0)
    biases = [p for n, p in net.named_parameters() if n.endswith("bias")]
    assert all(torch.count_nonzero(b) == 0 for b in biases)
    convs = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, torch.nn.Conv2d)])
    # 6 convs × 81 weights, each with fan_in = fan_out = 27: sample std within 4 standard errors
    want = std(27, 27)
    assert abs(convs.std().item() - want) < 4 * want / (2 * (convs.numel() - 1)) ** 0.5
    if scheme == "glorot_uniform":
        assert convs.abs().max().item() <= (6 / 54) ** 0.5


@pytest.mark.parametrize("seed,purpose,epoch", [(-1, "init", 0), (1.5, "init", 0), (True, "init", 0),
                                                (0, "init", -2), (0, "dropout", 0)])
def test_bad_arguments_name_the_value(seed, purpose, epoch):
    with pytest.raises(ValueError, match="must be an integer >= 0|valid: init, data_order"):
        derived_seed(seed, purpose, epoch)
