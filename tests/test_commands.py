"""``lightning-sig sweep|figures|inspect|verdicts`` (lightning_sig/commands.py, the console script
of pyproject.toml's ``[project.scripts]``): each command answers as its ``python -m`` form does,
in this process and as the script that ``pip install -e .`` installed."""
from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from lightning_sig import commands

SCRIPT = "lightning-sig"


def _sweep_args(configs: Path, out: Path):
    return ["figA", "--seeds", "0-2", "--members", "2", "--config-dir", str(configs), "--out",
            str(out), "--dry-run"]


def test_help_lists_every_command_and_bad_commands_exit_2(capsys):
    assert commands.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lightning-sig <command> [options]")
    assert [line.split()[0] for line in out.splitlines()[3:]] == [
        "sweep", "figures", "inspect", "verdicts"]
    assert commands.main(["plot"]) == 2
    assert "error: unknown command 'plot'; valid commands: sweep, figures, inspect, verdicts" \
        in capsys.readouterr().err
    assert commands.main([]) == 2
    assert "error: no command given" in capsys.readouterr().err


def test_each_command_is_its_python_m_main(configs, tmp_path, capsys):
    from lightning_sig.experiments import sweep_cli, verdict_report

    assert commands.main(["sweep", *_sweep_args(configs, tmp_path / "o")]) == 0
    via_script = capsys.readouterr().out
    assert sweep_cli.main(_sweep_args(configs, tmp_path / "o")) == 0
    assert via_script == capsys.readouterr().out
    assert via_script.splitlines()[0] == "0 of 6 runs done, 6 to run in 4 process(es)"
    assert commands.main(["figures", str(tmp_path / "nowhere")]) == 2
    assert "error: sweep_dir=" in capsys.readouterr().err
    assert commands.main(["verdicts", str(tmp_path)]) == verdict_report.main([str(tmp_path)]) == 2
    assert "holds no run summaries" in capsys.readouterr().err


def test_inspect_prints_the_scalars_of_a_run(tmp_path, capsys):
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path)) as writer:
        for step, value in enumerate((0.5, 0.75)):
            writer.add_scalar("val/acc", value, step)
    assert commands.main(["inspect", str(tmp_path), "--tags", "val/acc", "val/loss"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "1 scalar tags:", "  val/acc", "0 histogram tags: ",
        "val/acc (2 points): step 0: 0.5, step 1: 0.75", "val/loss: not logged"]


def _installed_script() -> Path:
    """The ``lightning-sig`` script of this interpreter's environment (``pip install -e .``
    writes it next to ``python``), else the one on the PATH."""
    declared = [e.value for e in entry_points(group="console_scripts") if e.name == SCRIPT]
    assert declared == ["lightning_sig.commands:main"], (
        f"the installed lightning_sig declares console scripts {declared}: reinstall this "
        f"checkout (python -m pip install --no-deps -e .)")
    for folder in (sysconfig.get_path("scripts"), Path(sys.executable).parent):
        if (Path(folder) / SCRIPT).is_file():
            return Path(folder) / SCRIPT
    found = shutil.which(SCRIPT)
    assert found, f"no {SCRIPT} script next to {sys.executable} nor on the PATH"
    return Path(found)


def test_the_installed_console_script_runs_the_commands(configs, tmp_path):
    """The script itself (its own interpreter line, from another directory) prints what
    ``python -m lightning_sig.sweep`` prints, and passes exit statuses through."""
    script = _installed_script()
    args = _sweep_args(configs, tmp_path / "o")

    def run(*argv):
        return subprocess.run([*argv], cwd=tmp_path, capture_output=True, text=True, timeout=120)

    def without_interpreter(text):  # todo lines start with the interpreter's path
        return [line.split(" -c ", 1)[-1] for line in text.splitlines()]

    script_run = run(str(script), "sweep", *args)
    module_run = run(sys.executable, "-m", "lightning_sig.sweep", *args)
    assert script_run.returncode == module_run.returncode == 0, script_run.stderr
    assert without_interpreter(script_run.stdout) == without_interpreter(module_run.stdout)
    assert script_run.stdout.splitlines()[1:3] == ["figA/a: 0 done, 3 to do",
                                                   "figA/b: 0 done, 3 to do"]
    assert "members_0-1" in script_run.stdout.splitlines()[3]
    listed = run(str(script), "--help")
    assert listed.returncode == 0 and "verdicts" in listed.stdout
    bad = run(str(script), "figures", str(tmp_path / "nowhere"))
    assert bad.returncode == 2 and "error: sweep_dir=" in bad.stderr
