"""The ``backend`` hyperparameter of our LightningModules: validation, resolution, and the same
training through Trainer.fit on the fused and the torch path (tiny synthetic data; 200 steps on
real CIFAR-10 when ../shared/cifar10 is present)."""
import pytest
import pytorch_lightning as pl
import torch

from lightning_sig import CIFAR10DataModule, CombinedNet, ManyLayersNet
from tests.conftest import REAL_CIFAR10
from tests.kernel_gate import needs_kernels  # skips without the kernels, fails under CI


@pytest.fixture()
def one_thread():
    """One intra-op thread for the fits, restored afterwards: on the shared 2-core machine two
    OpenMP threads per op spin against the other processes (measured: 32–75 s for 200 tiny
    steps with 2 threads under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_bad_backend_is_refused_before_training():
    with pytest.raises(ValueError, match=r"backend must be one of 'auto', 'torch', 'fused', got 'gpu'"):
        CombinedNet(backend="gpu")
    with pytest.raises(ValueError, match="compile_net"):
        CombinedNet(backend="fused", compile_net=True)


@needs_kernels
def test_backend_resolution():
    assert CombinedNet()._resolve_backend() == "fused"  # auto on CPU
    assert CombinedNet(num_members=2)._resolve_backend() == "fused"
    assert CombinedNet(backend="torch")._resolve_backend() == "torch"
    assert CombinedNet(compile_net=True)._resolve_backend() == "torch"  # auto yields to compile
    assert CombinedNet()._resolve_backend(torch.device("meta")) == "torch"  # not a CPU
    with pytest.raises(ValueError, match="CPU"):
        CombinedNet(backend="fused")._resolve_backend(torch.device("meta"))


def _fit(cls, backend, dm, steps, members=1, **hparams):
    pl.seed_everything(0)
    module = cls(backend=backend, num_members=members, **hparams)
    dm.member_seeds = None  # the module hands its member seeds to the DataModule
    trainer = pl.Trainer(max_steps=steps, limit_val_batches=8, val_check_interval=steps,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, dm)  # validation (8 batches) after the last step
    assert module.backend == backend
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    return module, metrics


@needs_kernels
@pytest.mark.parametrize("members", [1, 2])
def test_fit_same_parameters_on_both_paths(fake_cifar, members, one_thread):
    # Table 2 net at its paper init N(0, 0.05²) (well conditioned, see test_fused.py); 4 steps of
    # Adam (lr 1e-3) move θ by ~4e-3, a wrong gradient by that much; rounding stays < 1e-5.
    runs = [_fit(ManyLayersNet, b, CIFAR10DataModule(str(fake_cifar), batch_size=8), 4, members,
                 activation="tanh", alpha=2.0, l2_strength=0.01)[0] for b in ("torch", "fused")]
    for (name, a), b in zip(runs[0].net.named_parameters(), runs[1].net.parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=2e-5, msg=name)


@needs_kernels
@pytest.mark.skipif(not (REAL_CIFAR10 / "cifar-10-batches-py").is_dir(),
                    reason="no ../shared/cifar10")
def test_200_steps_on_real_cifar10_same_parameters_and_val_acc(one_thread):
    # Table 2 net (paper init), both remedies; 200 Adam steps of batch 8 move θ by ~0.1.
    dm = CIFAR10DataModule(str(REAL_CIFAR10), batch_size=8)
    runs = [_fit(ManyLayersNet, b, dm, 200, activation="tanh", alpha=2.0, l2_strength=0.01)
            for b in ("torch", "fused")]
    (torch_run, torch_metrics), (fused_run, fused_metrics) = runs
    for (name, a), b in zip(torch_run.net.named_parameters(), fused_run.net.parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-4, msg=name)
    # 8 val batches of 8 images: equal accuracy (a near-tie logit could flip one image: 1/64)
    assert abs(fused_metrics["val/acc"] - torch_metrics["val/acc"]) <= 1 / 64 + 1e-9
    assert fused_metrics["val/loss"] == pytest.approx(torch_metrics["val/loss"], rel=1e-4)


def test_without_a_compiler_auto_falls_back_to_torch_with_one_warning(tmp_path):
    # A fresh process whose compiler does not exist and whose extension cache is empty.
    import os
    import subprocess
    import sys
    from pathlib import Path
    code = ("import warnings; warnings.simplefilter('always')\n"
            "from lightning_sig.nn.convnets import TABLE3, SigmoidConvNet\n"
            "from lightning_sig.nn.fused.backend import resolve_backend\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    first = resolve_backend('auto', SigmoidConvNet(TABLE3))\n"
            "    second = resolve_backend('auto', SigmoidConvNet(TABLE3))\n"
            "ours = [x for x in w if 'fused CPU kernels could not be built' in str(x.message)]\n"
            "print(first[0], second[0], len(ours))\n"
            "try:\n"
            "    resolve_backend('fused', SigmoidConvNet(TABLE3))\n"
            "except RuntimeError as err:\n"
            "    print('fused:', 'C++20 compiler and ninja' in str(err))\n")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, CXX=str(tmp_path / "no-such-c++"),
               TORCH_EXTENSIONS_DIR=str(tmp_path / "ext"), PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split("\n")[-3:-1] == ["torch torch 1", "fused: True"], out.stdout
