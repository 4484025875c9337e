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


def _kernel_or_skip():
    from lightning_sig.gradients.kernel_row import kernel_available
    if not kernel_available():
        pytest.skip("the compiled kernel could not be built here")


@pytest.mark.parametrize("r", [0.01, 1e-4, 0.3])
def test_kernel_row_equals_the_mapping_bitwise(r):
    """The compiled g − r·θ that the callback writes into its buffer rows (KernelRow) equals
    the mapping path bitwise, also with subnormal and signed-zero coordinates."""
    from lightning_sig.gradients.kernel_row import KernelRow
    _kernel_or_skip()
    module, params, flat = _module_with_gradient(alpha=2.0, l2_strength=r)
    with torch.no_grad():
        params[0].grad[0, 0, 0, :2] = torch.tensor([1e-40, -0.0])  # subnormal, -0
        params[1].data[:2] = torch.tensor([1e-39, -0.0])
    flat = flatten_dense_tensors([p.grad for p in params])
    general = flat_data_gradient(SimpleNamespace(penalty_gradients=module.penalty_gradients),
                                 flat, params)
    spec = module.penalty_l2()
    row = torch.full((flat.numel(),), float("nan"))
    KernelRow([p.grad for p in params], spec[1], spec[0]).write(row)
    assert torch.equal(row.view(torch.int32), general.view(torch.int32))  # bits, -0 included
    copy = torch.full_like(row, float("nan"))
    KernelRow([p.grad for p in params]).write(copy)
    assert torch.equal(copy.view(torch.int32), flat.view(torch.int32))


def test_kernel_row_copies_half_sparse_and_strided_tensors():
    """fp16/bf16 are upcast exactly, sparse made dense, non-contiguous gathered; a wrong row
    size or a float64 data gradient raises."""
    from lightning_sig.gradients.kernel_row import KernelRow
    _kernel_or_skip()
    g = torch.randn(4, 6)
    parts = [g.t(), g[:, 0].to(torch.float16), g[:, 1].to(torch.bfloat16),
             torch.eye(3).to_sparse()]
    want = torch.cat([p.to_dense().float().reshape(-1) for p in parts])
    row = torch.empty(want.numel())
    KernelRow(parts).write(row)
    assert torch.equal(row, want)
    with pytest.raises(RuntimeError, match="values for a row of"):
        KernelRow(parts).write(torch.empty(want.numel() + 1))
    with pytest.raises(RuntimeError, match="float32 gradients and parameters only"):
        KernelRow([g.double()], [g.double()], 0.1).write(torch.empty(24))
