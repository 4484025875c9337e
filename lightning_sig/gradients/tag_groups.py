"""Where the callbacks' tags sit in TensorBoard: after the user's metrics.

TensorBoard's Time Series and Scalars tabs group tags by their first path component, sort the
groups by name and open the first ones. Under their own names (``act/...``, ``grad/...``,
``grad_epoch/...``) the SaturationMonitor's and the GradientQuantileCallback's groups sort
before the user's ``train/*`` and ``val/*``, so a dashboard opened on 10 layers' statistics
(110 cards per prefix with every statistic) first. In TensorBoard files they are therefore
written under one group each whose name sorts after every lowercase name: ``|g|`` for the
gradient statistics (the group of the log10 band already, :mod:`~lightning_sig.gradients.
log10_band`) and ``|f'|`` for the activation derivatives, e.g. ``|g|/grad/global/abs_q50`` and
``|f'|/act/global/saturated_frac``.

Only TensorBoard files get these names (events, histograms, images, the custom-scalars layout);
other loggers (CSV, MLflow, ...) get the plain ones (``grad/global/abs_q50``), and the readers
of this package (summaries, figures, ``inspect_run``) map TensorBoard names back with
:func:`canonical_tag`, so runs written before this change read the same. The log10 band tags
(``|g|/grad/global/log10_q50``) have the same name everywhere.
"""
from __future__ import annotations

from typing import Dict, Iterable

__all__ = ["GRADIENT_GROUP", "ACTIVATION_GROUP", "tensorboard_tag", "canonical_tag",
           "canonical_names"]

#: TensorBoard group of the GradientQuantileCallback's tags.
GRADIENT_GROUP = "|g|"
#: TensorBoard group of the SaturationMonitor's tags.
ACTIVATION_GROUP = "|f'|"
#: First path component of a plain tag -> its TensorBoard group.
_GROUP_OF: Dict[str, str] = {
    **{prefix: GRADIENT_GROUP for prefix in (
        "grad", "grad_data", "grad_epoch", "grad_data_epoch", "grad_epoch_steps", "grad_hist",
        "grad_depth")},
    "act": ACTIVATION_GROUP,
}


def tensorboard_tag(tag: str) -> str:
    """The name of a callback's plain ``tag`` in TensorBoard files (other tags, the log10 band
    tags and names already in a group unchanged). A prefix of tags works too (``"act/"``)."""
    group = _GROUP_OF.get(tag.split("/", 1)[0]) if "/" in tag else None
    return f"{group}/{tag}" if group is not None else tag


def canonical_tag(tag: str) -> str:
    """The plain name of a TensorBoard tag written by :func:`tensorboard_tag` (inverse; other
    tags, the log10 band tags and plain names unchanged)."""
    group, _, rest = tag.partition("/")
    if group in (GRADIENT_GROUP, ACTIVATION_GROUP) and _GROUP_OF.get(
            rest.split("/", 1)[0]) == group and not rest.rsplit("/", 1)[-1].startswith("log10_q"):
        return rest
    return tag


def canonical_names(tags: Iterable[str]) -> Dict[str, str]:
    """``{plain name: name in the file}`` of a run's TensorBoard tags (for readers)."""
    return {canonical_tag(tag): tag for tag in tags}
