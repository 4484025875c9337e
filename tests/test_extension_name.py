"""The fused kernels' torch extension name is one per source folder, so two checkouts on one
machine (worktrees, CI beside a clone) do not rebuild each other's build (nn/fused/_build.py)."""
import hashlib
import os

from lightning_sig.nn.fused._build import _extension_name


def test_one_extension_name_per_source_folder(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (tmp_path / "link").symlink_to(a)
    name = _extension_name(str(a))
    assert name == "lightning_sig_fused_" + hashlib.sha1(os.path.realpath(a).encode()).hexdigest()[:8]
    assert name.isidentifier() and name != _extension_name(str(b))
    assert _extension_name(str(tmp_path / "link")) == name  # the same folder by another path
