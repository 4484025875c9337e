"""The one list of public names (lightning_sig/public_names.py) against what the package defines
and exports (issue 19): real ``class`` statements in both namespace modules, the lazy top-level
exports, the re-exports, the CLI's class-path translation, ``__init__`` docstrings, pickles."""
from __future__ import annotations

import ast
import importlib
import inspect
import pickle
from pathlib import Path

import pytest

import lightning_sig
from lightning_sig.lightning.cli import translate_class_paths
from lightning_sig.lightning.namespace import check_namespace, lightning_classes, namespace_of
from lightning_sig.public_names import CLI_CLASSES, LIGHTNING_CLASSES, NAMESPACE_MODULES, \
    PUBLIC_MODULES, TORCH_NAMES

ROOT = Path(__file__).resolve().parents[1]
NAMESPACES = ["pytorch_lightning", "lightning.pytorch"]
#: the Lightning base each of our classes has in its namespace
BASES = {"SigmoidNetModule": "LightningModule", "LargeParamsNet": "LightningModule",
         "ManyLayersNet": "LightningModule", "CombinedNet": "LightningModule",
         "CIFAR10DataModule": "LightningDataModule", "GradientQuantileCallback": "Callback",
         "NonFiniteLossGuard": "Callback", "SaturationMonitor": "Callback",
         "ResumeSaveConfigCallback": "Callback", "RemoveFailedStartLogs": "Callback"}


def _source_tree(module: str) -> ast.Module:
    path = ROOT / (module.replace(".", "/") + ".py")
    return ast.parse(path.read_text(), str(path))


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_each_namespace_module_has_a_class_statement_for_exactly_the_listed_classes(namespace):
    tree = _source_tree(NAMESPACE_MODULES[namespace])
    classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    assert classes == list(LIGHTNING_CLASSES + CLI_CLASSES)
    for node in tree.body:
        if isinstance(node, ast.ClassDef):  # a docstring naming the namespace, static
            assert f"``{namespace}``" in ast.get_docstring(node), node.name


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_the_classes_are_the_namespace_modules_own_with_their_public_names(namespace):
    pl = importlib.import_module(namespace)
    classes = lightning_classes(namespace)
    assert list(classes) == list(LIGHTNING_CLASSES + CLI_CLASSES)
    for name, cls in classes.items():
        assert (cls.__name__, cls.__qualname__) == (name, name)  # callback state keys
        assert cls.__module__ == NAMESPACE_MODULES[namespace]
        assert issubclass(cls, getattr(pl, BASES[name]))
        assert namespace_of(cls.__new__(cls)) == namespace
    subclasses = ("LargeParamsNet", "ManyLayersNet", "CombinedNet")
    assert all(issubclass(classes[n], classes["SigmoidNetModule"]) for n in subclasses)


def test_the_twins_differ_per_namespace():
    ours, theirs = lightning_classes("pytorch_lightning"), lightning_classes("lightning.pytorch")
    for name in LIGHTNING_CLASSES + CLI_CLASSES:
        assert ours[name] is not theirs[name]
        assert not issubclass(ours[name], theirs[name]) and not issubclass(theirs[name], ours[name])


def test_lightning_sig_exports_the_listed_names_lazily():
    assert lightning_sig.__all__ == sorted([*TORCH_NAMES, *LIGHTNING_CLASSES])
    pl_module = importlib.import_module(NAMESPACE_MODULES["pytorch_lightning"])
    for name in LIGHTNING_CLASSES:
        assert getattr(lightning_sig, name) is getattr(pl_module, name)
    for name, module in TORCH_NAMES.items():
        assert getattr(lightning_sig, name) is getattr(importlib.import_module(module), name)
    for name in CLI_CLASSES:
        assert not hasattr(lightning_sig, name)


def test_the_type_checking_imports_of_lightning_sig_name_the_listed_names():
    tree = _source_tree("lightning_sig.__init__")
    guarded = next(n for n in tree.body if isinstance(n, ast.If)
                   and getattr(n.test, "id", "") == "TYPE_CHECKING")
    imported = {(node.module, a.name) for node in guarded.body for a in node.names}
    expected = {(m, n) for n, m in TORCH_NAMES.items()}
    expected |= {(NAMESPACE_MODULES["pytorch_lightning"], n) for n in LIGHTNING_CLASSES}
    assert imported == expected


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_every_public_name_of_lightning_sig_is_importable_from_either_namespace(namespace):
    """Issue 19: ``from lightning_sig.lightning.pytorch import ScaledActivation`` failed."""
    module = importlib.import_module(NAMESPACE_MODULES[namespace])
    extra = ["main"] if namespace == "lightning.pytorch" else []
    assert module.__all__ == [*LIGHTNING_CLASSES, *CLI_CLASSES, *TORCH_NAMES, *extra]
    for name in lightning_sig.__all__:
        value = getattr(module, name)
        if name in TORCH_NAMES:
            assert value is getattr(lightning_sig, name)
        else:
            assert value.__name__ == name
    exec(f"from {PUBLIC_MODULES[namespace]} import ScaledActivation, SigmoidConvNet, TABLE3", {})


@pytest.mark.parametrize("name", LIGHTNING_CLASSES + CLI_CLASSES)
def test_translate_class_paths_maps_each_listed_class_in_either_spelling(name):
    twin = f"lightning_sig.lightning.pytorch.{name}"
    assert translate_class_paths(f"class_path: lightning_sig.lightning.pytorch_lightning.{name}") \
        == f"class_path: {twin}"
    if name in LIGHTNING_CLASSES:
        assert translate_class_paths(f"- class_path: lightning_sig.{name}\n") == f"- class_path: {twin}\n"
    assert translate_class_paths(twin) == twin  # already translated: unchanged


def test_translate_class_paths_leaves_other_names_and_translates_lightning_ones():
    text = ("a: lightning_sig.ScaledActivation\nb: pytorch_lightning.loggers.TensorBoardLogger\n"
            "c: lightning_sig.CombinedNetX\nd: my_pytorch_lightning.x\n")
    assert translate_class_paths(text) == (
        "a: lightning_sig.ScaledActivation\nb: lightning.pytorch.loggers.TensorBoardLogger\n"
        "c: lightning_sig.CombinedNetX\nd: my_pytorch_lightning.x\n")


def test_check_namespace_refuses_a_twin_and_accepts_its_own_namespace():
    import lightning.pytorch as L
    import pytorch_lightning as PL
    trainer = L.Trainer(logger=False, enable_progress_bar=False)
    guard = lightning_classes("lightning.pytorch")["NonFiniteLossGuard"]()
    check_namespace(guard, trainer)  # same namespace: no error
    check_namespace(guard, object())  # not a Trainer of either: no error
    with pytest.raises(TypeError, match=r"^lightning_sig\.NonFiniteLossGuard is built on "
                                        r"pytorch_lightning, but the Trainer is a lightning\."
                                        r"pytorch\.Trainer: use lightning_sig\.lightning\.pytorch"
                                        r"\.NonFiniteLossGuard with lightning\.pytorch"):
        check_namespace(lightning_classes("pytorch_lightning")["NonFiniteLossGuard"](), trainer)
    with pytest.raises(TypeError, match=r"^lightning_sig\.lightning\.pytorch\.NonFiniteLossGuard "
                                        r"is built on lightning\.pytorch"):
        check_namespace(guard, PL.Trainer(logger=False, enable_progress_bar=False))


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_a_pickle_made_now_names_the_defining_module_and_loads(namespace):
    cls = lightning_classes(namespace)["NonFiniteLossGuard"]
    data = pickle.dumps(cls(action="continue"))
    assert f"{NAMESPACE_MODULES[namespace]}".encode() in data
    loaded = pickle.loads(data)
    assert type(loaded) is cls and loaded.action == "continue"


def _public_classes():
    from lightning_sig.nn.activations import ScaledActivation
    from lightning_sig.nn.convnets import SigmoidConvNet
    own = [ScaledActivation, SigmoidConvNet]
    for namespace in NAMESPACES:  # ResumeSaveConfigCallback: Lightning's SaveConfigCallback's
        own += [c for n, c in lightning_classes(namespace).items() if n != "ResumeSaveConfigCallback"]
    return own


@pytest.mark.parametrize("cls", _public_classes(), ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_public_classes_init_has_a_docstring_with_every_argument(cls):
    """Issue 19: ``help(ScaledActivation.__init__)`` showed nn.Module's generic text."""
    init = cls.__init__
    assert init.__module__.startswith("lightning_sig.")
    doc = inspect.getdoc(init)
    assert doc and "nn.Module" not in doc.splitlines()[0]
    params = [p for p in inspect.signature(init).parameters if p != "self"]
    if params:
        args = doc.split("Args:\n", 1)[1]
        for name in params:
            assert f"\n    {name}: " in "\n" + args, f"{cls.__name__}.__init__: {name}"
