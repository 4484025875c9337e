"""lightning_sig.thread_choice: one intra-op thread for the paper nets unless the user chose a
count (OMP_NUM_THREADS / MKL_NUM_THREADS, or torch.set_num_threads before), reversible, and named
on the backend line of a CLI run. Each case runs in a fresh process (torch's thread count is
process-wide and set once from the environment)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_sig.thread_choice import choose_threads

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "fig3_combined" / "tanh_reg_scaled.yaml"
PROBE = """
import json, sys, torch
from lightning_sig.thread_choice import choose_threads, restore_threads
default = torch.get_num_threads()
if sys.argv[1] == "set":
    torch.set_num_threads(default + 1)
before = torch.get_num_threads()
report = choose_threads()
chosen = torch.get_num_threads()
restored = restore_threads()
print(json.dumps(dict(default=default, before=before, report=report, chosen=chosen,
                      restored=restored, after=torch.get_num_threads())))
"""


def _fresh(*argv, **env):
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    done = subprocess.run([sys.executable, *argv], env=dict(base, **env), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _probe(mode="plain", **env):
    return json.loads(_fresh("-c", PROBE, mode, **env).stdout.splitlines()[-1])


def test_torch_default_is_replaced_by_one_thread_and_restored():
    out = _probe()
    assert out["chosen"] == 1 and out["report"].startswith("threads=1 (lightning_sig's choice")
    assert out["after"] == out["default"] and out["restored"] == (out["default"] != 1)


@pytest.mark.parametrize("variable", ["OMP_NUM_THREADS", "MKL_NUM_THREADS"])
def test_environment_variable_wins(variable):
    out = _probe(**{variable: "2"})
    assert out["chosen"] == out["before"] == 2 and not out["restored"]
    assert out["report"] == f"threads=2 ({variable}=2)"


def test_earlier_set_num_threads_wins():
    out = _probe("set")
    n = out["default"] + 1
    assert out["chosen"] == out["before"] == n and out["after"] == n and not out["restored"]
    assert out["report"] == f"threads={n} (torch.set_num_threads({n}))"


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_count_is_refused(bad):
    with pytest.raises(ValueError, match=f"threads must be an integer >= 1, got {bad!r}"):
        choose_threads(bad)


def test_cli_run_names_its_threads_on_the_backend_line(fake_cifar, tmp_path):
    code = ("import sys, torch; from lightning_sig.lightning.cli import main; "
            "main(sys.argv[1:]); print('threads after main:', torch.get_num_threads())")
    done = _fresh("-c", code, "fit", "--config", str(CONFIG), "--data.data_dir", str(fake_cifar),
                  "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1",
                  "--trainer.enable_progress_bar", "false",
                  "--trainer.logger.init_args.save_dir", str(tmp_path))
    output = done.stdout + done.stderr
    line = next(x for x in output.splitlines() if "CombinedNet: backend=" in x)
    assert "; threads=1 (lightning_sig's choice for the paper nets" in line, line
    default = _probe()["default"]
    assert f"threads after main: {default}" in output  # main() restores torch's count
