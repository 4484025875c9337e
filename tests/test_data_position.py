"""The training loaders' position (epoch, batch) without a trainer: what ``state_dict`` reports,
what ``load_state_dict`` restores, for one order, S members and DDP shards; bad positions are
refused. (With a trainer: tests/test_resume_anywhere.py.)"""
import pytest
import torch

from lightning_sig import CIFAR10DataModule
from lightning_sig.lightning.data import EpochSeededSampler, epoch_order


def _loader(data_dir, **kwargs):
    dm = CIFAR10DataModule(str(data_dir), batch_size=16, shuffle_seed=3, **kwargs)
    dm.setup("fit")
    return dm.train_dataloader()


def _labels(batches):
    return [b[1].tolist() for b in batches]


@pytest.mark.parametrize("members", [None, [3, 9]])
def test_state_dict_round_trip_continues_the_epoch_where_it_stopped(fake_cifar, members):
    loader = _loader(fake_cifar, member_seeds=members)  # 100 images: 7 batches per epoch
    loader.batch_sampler.sampler.set_epoch(2)  # what Lightning calls, for both kinds of loader
    whole = list(loader)
    assert loader.state_dict() == {"epoch": 3, "batch": 0}  # epoch 2 used up
    iterator = iter(loader)
    first = [next(iterator) for _ in range(3)]
    assert loader.state_dict() == {"epoch": 2, "batch": 3}
    assert _labels(first) == _labels(whole[:3])
    again = _loader(fake_cifar, member_seeds=members)
    again.load_state_dict({"epoch": 2, "batch": 3})
    assert _labels(again) == _labels(whole[3:])  # the rest of epoch 2, then
    assert again.state_dict() == {"epoch": 3, "batch": 0}
    again.load_state_dict({"epoch": 3, "batch": 0})
    loader.batch_sampler.sampler.set_epoch(3)
    assert _labels(again) == _labels(loader)  # a whole epoch 3


def test_a_shard_resumes_at_its_own_batch():
    sampler = EpochSeededSampler(100, seed=5, num_replicas=2, rank=1, batch_size=8)
    sampler.set_epoch(4)
    shard = list(sampler)
    assert shard == epoch_order(100, 5, 4).tolist()[1::2]  # positions 1, 3, ... of the order
    sampler.resume_at(4, 2)
    assert list(sampler) == shard[16:]
    assert sampler.position() == (5, 0)


def test_bad_positions_are_refused_with_the_value(fake_cifar):
    loader = _loader(fake_cifar)
    for bad in ({"epoch": -1, "batch": 0}, {"epoch": 1}, {"epoch": 1.0, "batch": 2},
                {"epoch": True, "batch": 0}, [1, 2]):
        with pytest.raises(ValueError, match="epoch': int >= 0") as err:
            loader.load_state_dict(bad)
        assert repr(bad) in str(err.value)
    loader.load_state_dict({})  # a loader whose sampler Lightning replaced saves {}
    assert len(list(loader)) == 7


def test_uninterrupted_order_is_the_set_epoch_order(fake_cifar):
    loader = _loader(fake_cifar)
    loader.sampler.set_epoch(6)
    order = epoch_order(100, 3, 6)
    labels = torch.cat([b[1] for b in loader])
    assert torch.equal(labels, loader.dataset.labels[order])
