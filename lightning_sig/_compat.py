"""Every access to a private attribute of torch, Lightning or TensorBoard, in one place.

Each accessor names the attribute it reads and the versions it was checked against
(:data:`CHECKED_AGAINST`). If a release moves or renames it, the accessor raises
:class:`PrivateAPIMoved` naming the attribute and those versions, instead of silently falling
back: a fallback would keep training but quietly change what is logged or how fast it runs.

Nothing here imports Lightning: the Lightning checks look at the objects they are given (or at
``sys.modules``), so :mod:`lightning_sig.gradients` can use them without a Lightning import.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, List, Sequence, Tuple

__all__ = ["CHECKED_AGAINST", "PrivateAPIMoved", "FX_NAME_ATTRIBUTE", "flatten_dense_tensors",
           "unflatten_dense_tensors", "foreach_sub", "foreach_mul", "fused_adam_devices", "tensorboard_record_writer",
           "event_file_writer", "logger_prefix", "tensorboard_logger_types",
           "is_tensorboard_logger", "trainer_writes_logs_now",
           "training_batch_logs_now", "trainer_log_step",
           "attached_trainer", "fit_batch_progress"]

#: The releases every accessor below was read against: the newest, and the floors of
#: pyproject.toml that .ci/floors runs the suite on (docs/floors.md).
CHECKED_AGAINST = ("torch 2.14.1", "pytorch_lightning 2.6.6", "lightning 2.6.6",
                   "tensorboard 2.21.0", "torch 2.2.0", "pytorch_lightning 2.6.0",
                   "lightning 2.6.0", "tensorboard 2.14.0")

#: Set by Lightning on a LightningModule around every hook (~45 times a training step).
FX_NAME_ATTRIBUTE = "_current_fx_name"

_LIGHTNING_NAMESPACES = ("pytorch_lightning", "lightning.pytorch")


class PrivateAPIMoved(RuntimeError):
    """A private torch/Lightning/TensorBoard attribute that lightning_sig reads is missing."""


def _moved(what: str, error: Exception) -> PrivateAPIMoved:
    return PrivateAPIMoved(
        f"lightning_sig reads the private {what}, which this installation does not have "
        f"({type(error).__name__}: {error}); it was checked against "
        f"{', '.join(CHECKED_AGAINST)}. Install one of those versions or update "
        f"lightning_sig/_compat.py.")


# ------------------------------------------------------------------------------- torch
def _torch_utils(name: str) -> Callable:
    import torch
    try:
        return getattr(torch._utils, name)
    except AttributeError as error:
        raise _moved(f"torch._utils.{name}", error) from None


def flatten_dense_tensors(tensors: Sequence[Any]) -> Any:
    """``torch._utils._flatten_dense_tensors``: one (N,) tensor of the tensors' elements, in
    order (one ``torch.cat`` of their flat views, as DDP's bucketing uses)."""
    return _torch_utils("_flatten_dense_tensors")(tensors)


def unflatten_dense_tensors(flat: Any, tensors: Sequence[Any]) -> Tuple[Any, ...]:
    """``torch._utils._unflatten_dense_tensors``: views of ``flat`` shaped like ``tensors``."""
    return _torch_utils("_unflatten_dense_tensors")(flat, tensors)


def foreach_sub(tensors: Sequence[Any], others: Sequence[Any]) -> List[Any]:
    """``torch._foreach_sub``: [a - b for a, b in zip(tensors, others)] in one fused call."""
    import torch
    try:
        return list(torch._foreach_sub(list(tensors), list(others)))
    except AttributeError as error:
        raise _moved("torch._foreach_sub", error) from None


def foreach_mul(tensors: Sequence[Any], scalar: float) -> List[Any]:
    """``torch._foreach_mul``: [t * scalar for t in tensors] in one fused call."""
    import torch
    try:
        return list(torch._foreach_mul(list(tensors), scalar))
    except AttributeError as error:
        raise _moved("torch._foreach_mul", error) from None


def fused_adam_devices() -> List[str]:
    """``torch.utils._foreach_utils._get_fused_kernels_supported_devices()``: the device types
    with fused optimizer kernels (``cpu`` from torch 2.4, ``cuda``, ...)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError as error:
        raise _moved("torch.utils._foreach_utils._get_fused_kernels_supported_devices",
                     error) from None
    return list(_get_fused_kernels_supported_devices())


# ------------------------------------------------------------------------- TensorBoard
def tensorboard_record_writer() -> Any:
    """The module ``tensorboard.summary.writer.record_writer``; its module-level
    ``masked_crc32c`` checksums every event record (see :mod:`lightning_sig.speedups`)."""
    try:
        from tensorboard.summary.writer import record_writer
        record_writer.masked_crc32c  # noqa: B018 - the attribute speedups replaces
    except (ImportError, AttributeError) as error:
        raise _moved("tensorboard.summary.writer.record_writer.masked_crc32c", error) from None
    return record_writer


def event_file_writer(writer: Any) -> Any:
    """``SummaryWriter._get_file_writer()``: the FileWriter a ``SummaryWriter`` writes through
    (``add_scalar`` passes its ``Summary`` to this writer's ``add_summary``)."""
    try:
        return writer._get_file_writer()
    except AttributeError as error:
        raise _moved("torch.utils.tensorboard.SummaryWriter._get_file_writer", error) from None


# --------------------------------------------------------------------------- Lightning
def tensorboard_logger_types() -> Tuple[type, ...]:
    """The ``TensorBoardLogger`` classes of the Lightning namespaces imported so far (a logger
    object can only exist if its namespace is imported, so none is imported here)."""
    found = []
    for namespace in _LIGHTNING_NAMESPACES:
        loggers = sys.modules.get(f"{namespace}.loggers")
        if loggers is not None:
            found.append(loggers.TensorBoardLogger)
    return tuple(found)


def is_tensorboard_logger(logger: Any) -> bool:
    """Whether ``logger`` is a TensorBoardLogger of ``pytorch_lightning`` or ``lightning.pytorch``."""
    return isinstance(logger, tensorboard_logger_types())


def logger_prefix(logger: Any) -> str:
    """``TensorBoardLogger._prefix``: the ``prefix`` its ``log_metrics`` puts before each tag."""
    try:
        return logger._prefix
    except AttributeError as error:
        raise _moved("TensorBoardLogger._prefix", error) from None


def trainer_writes_logs_now(trainer: Any) -> bool:
    """``trainer._logger_connector.should_update_logs``: whether Lightning writes this training
    step's on-step metrics to its loggers (its ``log_every_n_steps`` rule)."""
    try:
        return bool(trainer._logger_connector.should_update_logs)
    except AttributeError as error:
        raise _moved("Trainer._logger_connector.should_update_logs", error) from None


def training_batch_logs_now(trainer: Any) -> bool:
    """Whether Lightning writes this training step's on-step metrics to its loggers, asked in
    a hook of a training batch before its optimizer step (``on_train_batch_start``,
    ``training_step``), where Lightning's active loop is the fit loop.

    Lightning's rule for that loop (:func:`trainer_writes_logs_now`, tested equal) without its
    loop lookup (~5 µs in a fit, this ~1 µs): ``(_batches_that_stepped + 1) %
    log_every_n_steps == 0`` or ``should_stop``; never with ``log_every_n_steps=0``. Always
    True without a Trainer or with ``fast_dev_run`` (our choice: a smoke run goes through the
    logging code)."""
    if trainer is None or trainer.fast_dev_run:
        return True
    every = trainer.log_every_n_steps
    if every == 0:
        return False
    return (trainer_log_step(trainer) + 1) % every == 0 or bool(trainer.should_stop)


def trainer_log_step(trainer: Any) -> int:
    """``trainer.fit_loop.epoch_loop._batches_that_stepped``: the step Lightning gives the
    metrics logged now (``train/*`` in TensorBoard)."""
    try:
        return int(trainer.fit_loop.epoch_loop._batches_that_stepped)
    except AttributeError as error:
        raise _moved("Trainer.fit_loop.epoch_loop._batches_that_stepped", error) from None


def fit_batch_progress(trainer: Any) -> Tuple[int, int, bool]:
    """``trainer.fit_loop.epoch_loop.batch_progress``: ``(current.processed, current.ready,
    is_last_batch)``, the training batches of the current epoch processed and fetched, and
    whether the last one fetched is the epoch's last (restored from a checkpoint on resume)."""
    try:
        progress = trainer.fit_loop.epoch_loop.batch_progress
        return int(progress.current.processed), int(progress.current.ready), \
            bool(progress.is_last_batch)
    except AttributeError as error:
        raise _moved("Trainer.fit_loop.epoch_loop.batch_progress", error) from None


def attached_trainer(module: Any) -> Any:
    """``LightningModule._trainer``: the attached Trainer or None (the public ``trainer``
    property raises when none is attached)."""
    try:
        return module._trainer
    except AttributeError as error:
        raise _moved("LightningModule._trainer", error) from None
