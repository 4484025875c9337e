"""Members mode has one declared interface (issue 19): lightning_sig/members/interface.py.

Every ``member_*`` name the package reads on another object (``pl_module.member_logger``,
``net.member_input(x)``, ``getattr(module, "member_gradient_rows", None)``) is declared by a
``Protocol`` there, and every name declared there is used: the scan reads the source with
``ast`` (attribute accesses on anything but ``self`` and ``hparams``, and string names given to
``getattr``/``hasattr``/``setattr``). Probes by name are left to the members package.
"""
from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Dict, Set, Tuple

import pytest

from lightning_sig.members import interface

PACKAGE = Path(__file__).resolve().parents[1] / "lightning_sig"
PROTOCOLS = (interface.MultiSeedModule, interface.MemberRowsModule, interface.MemberNetwork,
             interface.MemberRunLogger)


def declared_names() -> Set[str]:
    """Attribute and method names the interface's Protocols declare."""
    names: Set[str] = set()
    for proto in PROTOCOLS:
        for klass in proto.__mro__:
            if klass.__module__ == interface.__name__:
                names |= set(klass.__dict__.get("__annotations__", {}))
                names |= {n for n, v in vars(klass).items() if inspect.isfunction(v)}
    return names


def _is_own(node: ast.expr) -> bool:
    """``self.x`` or ``<anything>.hparams.x``: the object's own state, not the interface."""
    return (isinstance(node, ast.Name) and node.id == "self") or \
        (isinstance(node, ast.Attribute) and node.attr == "hparams")


def used_names(root: Path = PACKAGE) -> Dict[str, Set[Tuple[str, int]]]:
    """``member_*`` name → (file, line) of each read on another object, or probe by name."""
    used: Dict[str, Set[Tuple[str, int]]] = {}
    for path in sorted(root.rglob("*.py")):
        where = str(path.relative_to(root.parent))
        for node in ast.walk(ast.parse(path.read_text(), where)):
            name = None
            if isinstance(node, ast.Attribute) and not _is_own(node.value):
                name = node.attr
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in ("getattr", "hasattr", "setattr") \
                    and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                name = node.args[1].value
                if isinstance(name, str) and name.startswith("member_") \
                        and "/members/" not in where.replace("\\", "/"):
                    pytest.fail(f"{where}:{node.lineno} probes {name!r} by name: ask "
                                f"lightning_sig.members.interface instead")
            if isinstance(name, str) and name.startswith("member_"):
                used.setdefault(name, set()).add((where, node.lineno))
    return used


def test_every_member_name_the_package_uses_is_declared_and_every_declared_one_is_used():
    declared = {n for n in declared_names() if n.startswith("member_")}
    used = used_names()
    assert {"member_seeds", "member_logger", "member_gradients", "member_gradient_rows",
            "member_input"} <= declared
    undeclared = {n: sorted(w) for n, w in used.items() if n not in declared}
    assert not undeclared, f"used but not declared in members/interface.py: {undeclared}"
    assert declared <= set(used), f"declared but never used: {sorted(declared - set(used))}"


def test_the_scan_sees_attribute_reads_and_probes_but_not_own_state(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text(
        "def f(m, self):\n    self.member_own, m.hparams.member_log_dir\n"
        "    return m.member_seeds, m.net.member_input\n")
    (tmp_path / "pkg" / "members").mkdir()
    (tmp_path / "pkg" / "members" / "b.py").write_text(
        "def g(m):\n    return getattr(m, 'member_gradient_rows', None)\n")
    assert used_names(tmp_path / "pkg") == {
        "member_seeds": {("pkg/a.py", 3)}, "member_input": {("pkg/a.py", 3)},
        "member_gradient_rows": {("pkg/members/b.py", 2)}}
    (tmp_path / "pkg" / "a.py").write_text("def f(m):\n    return hasattr(m, 'member_x')\n")
    with pytest.raises(pytest.fail.Exception, match="probes 'member_x' by name"):
        used_names(tmp_path / "pkg")


def test_our_modules_implement_the_interface_and_the_mode_test_tells_the_modes_apart():
    from lightning_sig import CombinedNet
    from lightning_sig.members.loggers import MemberLogger
    from lightning_sig.members.networks import MemberConvNet

    single, members = CombinedNet(), CombinedNet(num_members=2, member_seeds=[3, 5])
    assert isinstance(members, interface.MemberRowsModule)
    assert interface.member_seeds_of(members) == [3, 5]
    assert interface.member_seeds_of(single) is None and interface.member_seeds_of(object()) is None
    assert interface.member_gradient_rows_of(members) == members.member_gradient_rows
    assert isinstance(members.net, MemberConvNet) and members.net.num_members == 2
    for proto, obj in ((interface.MemberNetwork, members.net), (interface.MemberRunLogger,
                                                               MemberLogger([3, 5]))):
        names = set(proto.__annotations__) | {n for n, v in vars(proto).items()
                                              if inspect.isfunction(v)}
        assert names and all(hasattr(obj, n) for n in names), (proto, names)


def test_member_seeds_of_needs_both_the_seeds_and_the_protocol():
    class SeedsOnly:  # member_seeds set, no member_gradients: not a MultiSeedModule
        member_seeds, member_logger = [1, 2], None

    class Full(SeedsOnly):
        def member_gradients(self):
            return []

    empty = Full()
    empty.member_seeds = []
    assert interface.member_seeds_of(SeedsOnly()) is None
    assert interface.member_seeds_of(Full()) == [1, 2]
    assert interface.member_seeds_of(empty) is None
