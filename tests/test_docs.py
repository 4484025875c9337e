"""README.md and the documentation pages (docs/, mkdocs.yml): the README stays short, every
relative link of README.md and docs/ points to a file of the repository, and the README's Python
snippets run (on a tiny synthetic CIFAR-10, with a Trainer cut to two steps).

The site itself is built by ``mkdocs build --strict`` in ``.ci/run`` (the ``docs`` extra).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").rglob("*.md"))

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def relative_links(path: Path):
    """Targets of the Markdown links and images of ``path`` outside code, without URLs."""
    text = INLINE_CODE.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http:, https:, mailto: ...; an anchor of the same page
        yield target


def test_readme_is_at_most_200_lines():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move details to docs/"


def test_readme_keeps_the_install_and_test_commands_of_ci():
    """.ci/run installs exactly as the README says; the README's commands must stay in step."""
    readme = README.read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = ('pip install torch==2.14.1 torchvision==0.29.1 && pip install -e ".[test,docs]"'
                    " && python -m pytest -q")
    assert test_command in readme
    assert "pip install torch==2.14.1 torchvision==0.29.1\n" in ci
    assert 'pip install -e ".[test,docs]"\npython -m pytest -q\n' in ci
    assert "mkdocs build --strict" in ci
    assert ("pip install torch==2.14.1 torchvision==0.29.1 && pip install -e . && python train.py fit "
            "--config configs/fig3_combined/tanh_reg_scaled.yaml") in readme
    assert "mkdocs serve" in readme and "mkdocs build --strict" in readme


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_to_existing_files(path):
    missing = [t for t in relative_links(path)
               if not (path.parent / t.split("#", 1)[0]).exists()]
    assert not missing, f"{path.relative_to(ROOT)}: links to missing files {missing}"


def test_every_docs_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = [p.relative_to(ROOT / "docs").as_posix() for p in PAGES]
    assert [p for p in pages if f": {p}\n" not in nav] == []


def python_snippets():
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)


def test_readme_has_python_snippets():
    assert len(python_snippets()) >= 3


@pytest.mark.parametrize("index", range(len(python_snippets())))
def test_readme_python_snippet_runs(index, fake_cifar, tmp_path, monkeypatch):
    """Each ```python block of the README, as printed, on fake data and two training steps."""
    import lightning.pytorch as L
    import pytorch_lightning as pl

    tiny = dict(max_epochs=1, max_steps=2, limit_train_batches=2, limit_val_batches=1,
                num_sanity_val_steps=0, log_every_n_steps=1, enable_progress_bar=False,
                enable_model_summary=False, enable_checkpointing=False,
                default_root_dir=str(tmp_path))

    def cut(trainer_class):
        # Patch __init__, not the module attribute: modules imported meanwhile (e.g.
        # lightning.pytorch.cli, whose LightningCLI defaults to ``Trainer``) keep the real class.
        original = trainer_class.__init__

        def __init__(self, *args, **kwargs):
            original(self, *args, **{**kwargs, **tiny})
        monkeypatch.setattr(trainer_class, "__init__", __init__)

    cut(pl.Trainer)
    cut(L.Trainer)
    monkeypatch.chdir(tmp_path)
    code = python_snippets()[index]
    assert "../shared/cifar10" in code or "Trainer" not in code
    code = code.replace("../shared/cifar10", str(fake_cifar))
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "__readme__"})
