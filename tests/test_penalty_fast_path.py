"""The data-loss gradient g − r·θ (``grad_data/*``): the one-flat-operation path of modules with
``penalty_l2()`` gives the same float32 values, bitwise, as the general ``penalty_gradients()``
mapping and as numpy's float32 arithmetic (fl(g − fl(r·θ)) per coordinate)."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lightning_sig import CombinedNet
from lightning_sig._compat import flatten_dense_tensors
from lightning_sig.gradients.penalty import flat_data_gradient


def _module_with_gradient(**kwargs):
    torch.manual_seed(0)
    module = CombinedNet(init="default", **kwargs)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    torch.nn.functional.cross_entropy(module(x), y).backward()
    params = [p for p in module.parameters() if p.grad is not None]
    return module, params, flatten_dense_tensors([p.grad for p in params])


@pytest.mark.parametrize("learnable_alpha", [False, True])
def test_fast_path_equals_the_mapping_and_numpy(learnable_alpha):
    module, params, flat = _module_with_gradient(alpha=2.0, l2_strength=0.01,
                                                 learnable_alpha=learnable_alpha)
    r, thetas = module.penalty_l2()
    alphas = [n for n, _ in module.named_parameters() if n.endswith("log_alpha")]
    assert len(alphas) == (9 if learnable_alpha else 0)  # one α per activation of Table 3's net
    assert r == 0.01 and len(thetas) == len(params) - len(alphas)
    fast = flat_data_gradient(module, flat, params)  # learnable α: not penalized, general path
    general = flat_data_gradient(SimpleNamespace(penalty_gradients=module.penalty_gradients),
                                 flat, params)
    assert fast.dtype == torch.float32 and torch.equal(fast, general)
    theta = np.concatenate([p.detach().numpy().ravel() if p in set(thetas)
                            else np.zeros(p.numel(), np.float32) for p in params])
    want = flat.numpy() - np.float32(0.01) * theta  # float32 throughout
    assert want.dtype == np.float32 and np.array_equal(fast.numpy(), want)
    assert not torch.equal(fast, flat)  # the penalty is not zero


def test_no_penalty_gives_none():
    module, params, flat = _module_with_gradient(alpha=2.0, l2_strength=0.0)
    assert module.penalty_l2() is None and flat_data_gradient(module, flat, params) is None
