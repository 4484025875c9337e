"""Synthetic finished runs for the run-summary tests: TensorBoard event files written with
TensorBoard's own EventFileWriter (no training), with values known in closed form.

:func:`json_summary` / :func:`write_json_summary` build summary JSON files directly (for the
verdict and figure tests: any series, provenance of schema /2).

Each run: ``epochs`` epochs of 3 logged training steps (steps 3e..3e+2), Lightning-style
``epoch`` scalar at each, per-step ``train/loss``, and at the epoch's last step ``val/acc``,
``val/loss``, ``grad_epoch/<layer>/abs_q50`` for layers ``global`` and ``net.0``,
``grad_data_epoch/global/abs_q50`` and ``act/global/saturated_frac``; plus ``config.yaml`` and
``hparams.yaml``. Run as a script (argv: run_dir seed epochs) it is a stand-in training child.
"""
import json
import sys
from pathlib import Path

import yaml

STEPS_PER_EPOCH = 3


def train_loss(seed: int, epoch: int, i: int) -> float:
    return 2.0 + seed + 0.25 * epoch + 0.125 * i


def epoch_values(seed: int, epoch: int) -> dict:
    """The per-epoch tags' values (exact in float32)."""
    return {"val/acc": 0.125 * (seed + 1) + 0.0625 * epoch, "val/loss": 2.5 - 0.25 * epoch,
            "grad_epoch/global/abs_q50": 2.0 ** -(seed + epoch + 4),
            "grad_epoch/net.0/abs_q50": 0.5, "grad_data_epoch/global/abs_q50": 2.0 ** -(epoch + 6),
            "act/global/saturated_frac": 0.75 - 0.125 * epoch}


def write_run(directory: Path, seed: int, epochs: int, hparams: dict) -> None:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(directory))
    t0 = 1_000_000.0

    def scalar(tag, value, step, wall):
        writer.add_event(Event(wall_time=wall, step=step, summary=Summary(
            value=[Summary.Value(tag=tag, simple_value=value)])))

    for epoch in range(epochs):
        for i in range(STEPS_PER_EPOCH):
            step = STEPS_PER_EPOCH * epoch + i
            scalar("train/loss", train_loss(seed, epoch, i), step, t0 + step)
            scalar("epoch", float(epoch), step, t0 + step)
        last = STEPS_PER_EPOCH * epoch + STEPS_PER_EPOCH - 1
        for tag, value in epoch_values(seed, epoch).items():
            scalar(tag, value, last + ("grad" in tag), t0 + last + 0.5)
        scalar("epoch", float(epoch), last, t0 + last + 0.5)
    writer.close()
    (directory / "hparams.yaml").write_text(yaml.safe_dump(hparams))
    (directory / "config.yaml").write_text(yaml.safe_dump({  # with absolute paths, as Lightning's
        "seed_everything": seed, "model": {"init_args": hparams},
        "trainer": {"default_root_dir": str(directory.resolve())},
        "data": {"data_dir": "/abs/data/cifar10"}}))


def json_summary(figure, arm, seed, acc, schema=2, commit="a" * 40, denormals="ftz", l2=0.0,
                 **series):
    """A run summary dict (schema /2 with ``provenance``, or /1 without) of ``len(acc)``
    epochs; ``series`` maps short names (g50, g50data, vf, vfdata, gmax, nonfinite, loss) to
    per-epoch lists (defaults: harmless constants)."""
    n = len(acc)
    tags = {"g50": "grad_epoch/global/abs_q50", "g50data": "grad_data_epoch/global/abs_q50",
            "vf": "grad_epoch/global/vanishing_frac", "vfdata": "grad_data_epoch/global/vanishing_frac",
            "gmax": "grad_epoch/global/abs_q100", "nonfinite": "grad_epoch/global/nonfinite_count",
            "loss": "train/loss"}
    values = {"g50": [1e-3] * n, "vf": [0.0] * n, "gmax": [1.0] * n, "nonfinite": [0] * n,
              "loss": [2.0] * n, **series}
    out = {"schema": f"lightning_sig.run_summary/{schema}", "figure": figure, "arm": arm,
           "seed": seed, "code_version": "abc1234", "config": {}, "hparams": {"l2_strength": l2},
           "marker": {"epochs": n, "wall_time_s": 100.0 + 10 * l2}, "start_wall_time": 0.0,
           "n_epochs": n, "series": {"val/acc": {"step": list(range(n)), "value": list(acc)}}}
    out["series"].update({tags[k]: {"step": list(range(n)), "value": list(v)}
                          for k, v in values.items()})
    if schema == 2:
        out["provenance"] = {"commit": commit, "dirty": False, "denormals": denormals,
                             "threads": 1, "backend": "fused"}
    return out


def write_json_summary(folder: Path, rec: dict) -> None:
    path = folder / rec["figure"] / rec["arm"] / f"seed_{rec['seed']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))


if __name__ == "__main__":
    write_run(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
              {"activation": "tanh", "alpha": 1.0, "l2_strength": float(sys.argv[4])})
