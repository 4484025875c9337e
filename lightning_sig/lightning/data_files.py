"""Reading, checking, downloading and writing CIFAR-10's official python-version batch files.

Kept apart from the DataModule so the file format is testable on its own, and so tests (ours
and users') can write small synthetic batches in the real format with :func:`write_batches`.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["BASE_FOLDER", "TRAIN_FILES", "TEST_FILES", "URL", "MD5", "missing_files",
           "load_batches", "download_cifar10", "write_batches", "RefusedGlobalError",
           "BatchUnpickler", "ALLOWED_GLOBALS"]

BASE_FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILES = ["test_batch"]
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"  # of the official archive (torchvision's value)
_LAYOUT = (f"expected layout: <data_dir>/{BASE_FOLDER}/" + "{" + ", ".join(TRAIN_FILES + TEST_FILES)
           + "}")
_BY_HAND = (f"To supply the files by hand, download {URL} on a machine with internet access, "
            f"extract it into <data_dir> (it creates {BASE_FOLDER}/) and pass --data.data_dir "
            f"<data_dir>")
_HOW_TO = f"{_BY_HAND}; or pass --data.download true on a machine with internet access."


def missing_files(data_dir: str, names: Sequence[str], raise_error: bool = False) -> List[str]:
    """Return the batch files of ``names`` missing under ``<data_dir>/cifar-10-batches-py``.

    Raises:
        FileNotFoundError: with ``raise_error=True`` and anything missing; the message says where
            it looked, the expected layout and how to supply the files. If ``data_dir`` is the
            ``cifar-10-batches-py`` folder itself, the message says to pass its parent.
    """
    folder = Path(data_dir) / BASE_FOLDER
    missing = [n for n in names if not (folder / n).is_file()]
    if missing and raise_error:
        if (Path(data_dir) / names[0]).is_file() or Path(data_dir).name == BASE_FOLDER:
            raise FileNotFoundError(
                f"data_dir={data_dir!r} points at the {BASE_FOLDER} folder itself; pass its parent "
                f"folder instead (data_dir={str(Path(data_dir).parent)!r}).")
        where = "does not exist" if not Path(data_dir).is_dir() else f"lacks {', '.join(missing)}"
        raise FileNotFoundError(f"CIFAR-10 batches not found: data_dir={data_dir!r} {where} "
                                f"(looked in {folder}). {_LAYOUT}. {_HOW_TO}")
    return missing


class RefusedGlobalError(pickle.UnpicklingError):
    """A batch file's pickle asks for a global that the CIFAR-10 format does not hold."""


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3's protocol-2 pickles use it for bytes (latin1 only)."""
    if encoding != "latin1" or not isinstance(text, str):
        raise RefusedGlobalError(f"_codecs.encode({type(text).__name__}, {encoding!r}) (only "
                                 f"latin1 text, as protocol-2 pickles of bytes hold)")
    return text.encode("latin1")


#: The globals a CIFAR-10 batch pickle may name: numpy arrays and dtypes (their constructors,
#: under numpy 1's ``numpy.core`` and numpy 2's ``numpy._core`` names) and the bytes helper of
#: protocol-2 pickles. Everything else (dict, list, str, bytes, ints) needs no global at all.
ALLOWED_GLOBALS = {
    **{(f"numpy.{core}.multiarray", name): obj for core in ("core", "_core")
       for name, obj in (("_reconstruct", np.empty(0).__reduce__()[0]),
                         ("scalar", np.uint8(0).__reduce__()[0]))},
    **{(f"numpy.{core}.numeric", "_frombuffer"): np.empty(0).__reduce_ex__(5)[0]
       for core in ("core", "_core")},  # arrays in pickle protocol 5
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class BatchUnpickler(pickle.Unpickler):
    """An unpickler that admits only :data:`ALLOWED_GLOBALS` (``pickle.load`` would import and
    call whatever a crafted file names, e.g. ``os.system``, while reading it).

    Raises:
        RefusedGlobalError: at the first other global, naming it, before it is imported.
    """

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedGlobalError(f"refused global {module}.{name} (a CIFAR-10 batch holds "
                                     f"only dicts, lists, str, bytes, ints and numpy arrays)") \
                from None


def _read_batch(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            entry = BatchUnpickler(f, encoding="latin1").load()
    except RefusedGlobalError as err:
        raise ValueError(f"CIFAR-10 batch file {path} is not a CIFAR-10 batch: {err}; nothing "
                         f"it asks for was run. Delete it and supply the official files.") from err
    except Exception as err:  # truncated pickles raise EOFError, UnpicklingError, ValueError...
        raise ValueError(f"CIFAR-10 batch file {path} is truncated or unreadable "
                         f"({type(err).__name__}: {err}); delete it and supply it again.") from err
    if not isinstance(entry, dict) or "data" not in entry or \
            not ("labels" in entry or "fine_labels" in entry):
        raise ValueError(f"CIFAR-10 batch file {path} lacks the 'data' and 'labels' entries.")
    data = np.asarray(entry["data"])
    labels = np.asarray(entry.get("labels", entry.get("fine_labels")))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 \
            or labels.shape != (data.shape[0],):
        raise ValueError(f"CIFAR-10 batch file {path} has data of shape {data.shape} "
                         f"({data.dtype}) and {labels.shape[0] if labels.ndim else 0} labels; "
                         f"expected (N, 3072) uint8 and N labels.")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"CIFAR-10 batch file {path} has labels outside 0..9.")
    return data, labels


def load_batches(data_dir: str, names: Sequence[str]) -> Tuple[Tensor, Tensor]:
    """Read batch files into ``images (N, 3, 32, 32) uint8`` and ``labels (N,) int64`` tensors.

    Files are read with :class:`BatchUnpickler` (numpy arrays, no other globals).

    Raises:
        ValueError: a truncated/unreadable file, one of the wrong shape, or one whose pickle
            names a global outside :data:`ALLOWED_GLOBALS` (names the file and the global).
    """
    parts = [_read_batch(Path(data_dir) / BASE_FOLDER / n) for n in names]
    data = np.concatenate([d for d, _ in parts]).reshape(-1, 3, 32, 32)  # (N, 3072) -> NCHW
    labels = np.concatenate([l for _, l in parts]).astype(np.int64)
    return torch.from_numpy(data), torch.from_numpy(labels)


def download_cifar10(data_dir: str) -> None:
    """Download and extract the official archive into ``data_dir`` (torchvision, MD5-checked).

    Raises:
        RuntimeError: the download failed (e.g. no network); says how to supply the files.
    """
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        download_and_extract_archive(URL, download_root=data_dir, md5=MD5)
    except Exception as err:
        raise RuntimeError(f"Downloading CIFAR-10 into {data_dir!r} failed ({type(err).__name__}: "
                           f"{err}); are you offline? {_BY_HAND}.") from err


def write_batches(data_dir: str, n_per_batch: int = 20, seed: int = 0) -> Path:
    """Write a synthetic CIFAR-10 in the official format (5 train batches + test batch).

    Each image is class-dependent noise (mean pixel value grows with the label) so a network
    can learn it. For tests and offline demos, never for results.

    Args:
        data_dir: the parent folder; ``cifar-10-batches-py/`` is created inside it.
        n_per_batch: images per batch file (the real files hold 10,000).
        seed: numpy seed.

    Returns:
        The path of the created ``cifar-10-batches-py`` folder.
    """
    rng = np.random.default_rng(seed)
    folder = Path(data_dir) / BASE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for name in TRAIN_FILES + TEST_FILES:
        labels = rng.integers(0, 10, n_per_batch)
        noise = rng.integers(0, 100, (n_per_batch, 3072))
        data = (noise + 15 * labels[:, None]).astype(np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels.tolist(), "batch_label": name}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [str(i) for i in range(10)], "num_vis": 3072}, f)
    return folder
