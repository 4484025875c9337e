"""The figure command (lightning_sig/figures.py; experiments/figure_cli.py, figures_draw.py,
figure_data.py, figure_table.py) on synthetic TensorBoard event files written here with torch's
SummaryWriter in the sweep's layout and tag schema: the plotted numbers (mean and quartiles over
seeds per epoch) equal hand-computed values, missing runs/epochs/tags give warnings instead of
errors, and the runtime table's ratios and baseline rule match hand-computed ones."""
import csv
import json

import time

import matplotlib.image
import pytest
import yaml
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from torch.utils.tensorboard import SummaryWriter

from lightning_sig.experiments import figure_cli as figures
from lightning_sig.experiments import figures_draw
from lightning_sig.experiments.figure_data import RunLog, SweepDataWarning, load_figure
from lightning_sig.experiments.figure_table import arm_settings, baselines, runtime_rows

STEPS = 10  # optimizer steps per epoch in the synthetic runs
PLAIN = {"activation": "tanh", "alpha": 1.0, "l2_strength": 0.0, "learnable_alpha": False}
REMEDY = {"activation": "tanh", "alpha": 2.0, "l2_strength": 0.01, "learnable_alpha": False}
QUIET = pytest.mark.filterwarnings("ignore::lightning_sig.experiments.figure_data.SweepDataWarning")


def write_run(sweep, figure, arm, seed, acc, grad=None, hparams=PLAIN, wall=None):
    """One run as Lightning + GradientQuantileCallback would log it.

    Epoch e (0-based) ends at global_step G = (e+1)·STEPS: val/acc and Lightning's ``epoch``
    scalar at step G-1, grad_epoch/global/<stat> at step G, and a training log of epoch e+1 at
    step G (so Lightning's ``epoch`` scalar at step G says e+1: epochs must not be read from it).
    """
    path = sweep / figure / arm / f"seed_{seed}"
    t0 = time.time()  # the writer's first event is stamped about now
    writer = SummaryWriter(str(path))
    for e, value in enumerate(acc):
        end = (e + 1) * STEPS
        writer.add_scalar("val/acc", value, end - 1, walltime=t0 + 10 * (e + 1))
        writer.add_scalar("epoch", e, end - 1, walltime=t0 + 10 * (e + 1))
        for stat, values in (grad or {}).items():
            writer.add_scalar(f"grad_epoch/global/{stat}", values[e], end,
                              walltime=t0 + 10 * e + 11)
        writer.add_scalar("train/loss", 1.0, end, walltime=t0 + 10 * e + 12)
        writer.add_scalar("epoch", e + 1, end, walltime=t0 + 10 * e + 12)
    writer.close()
    (path / "hparams.yaml").write_text(yaml.safe_dump(hparams))
    if wall is not None:
        (path / "DONE").write_text(json.dumps({"wall_time_s": wall, "epochs": len(acc)}))
    return path


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _by_key(rows):
    return {(r["arm"], r["tag"], int(r["epoch"])): r for r in rows}


@pytest.fixture()
def sweep(tmp_path):
    """figA: arm plain with 3 seeds (accuracy 1/8, 1/4, 1/2 × epoch), arm remedy with 2 seeds."""
    root = tmp_path / "sweep"
    for seed, scale in enumerate([1, 2, 4]):
        write_run(root, "figA", "plain", seed, [0.125 * scale, 0.25 * scale],
                  {"abs_q25": [1e-4 * scale] * 2, "abs_q50": [1e-3 * scale, 2e-3 * scale],
                   "abs_q75": [1e-2 * scale] * 2}, PLAIN, wall=[10.0, 14.0, 12.0][seed])
    for seed in range(2):
        write_run(root, "figA", "remedy", seed, [0.5, 0.75],
                  {"abs_q25": [0.5, 0.5], "abs_q50": [1.0 + seed, 2.0], "abs_q75": [4.0, 4.0]},
                  REMEDY, wall=15.0)
    return root


def test_csv_holds_mean_and_quartiles_over_seeds(sweep, tmp_path):
    # without a sweep.json the expected runs are every arm × every seed found
    with pytest.warns(SweepDataWarning, match=r"figA: 1 run\(s\) missing: remedy/seed_2$"):
        out = figures.make_figures(sweep, tmp_path / "figs")
    rows = _by_key(read_csv(out / "figA.csv"))
    # plain, val/acc: seeds hold 1/8, 1/4, 1/2 (epoch 1) and twice that (epoch 2); numpy
    # "linear" quartiles of 3 sorted values: q25 = midpoint of 1st and 2nd, q75 of 2nd and 3rd.
    for epoch, k in [(1, 1.0), (2, 2.0)]:
        row = rows[("plain", "val/acc", epoch)]
        assert int(row["n_seeds"]) == 3
        assert float(row["mean"]) == pytest.approx(k * 0.875 / 3, rel=1e-12)
        assert (float(row["q25"]), float(row["q75"])) == (k * 0.1875, k * 0.375)
    median = rows[("plain", "grad_epoch/global/abs_q50", 2)]
    assert float(median["mean"]) == pytest.approx(2e-3 * 7 / 3, rel=1e-6)  # float32 in events
    remedy = rows[("remedy", "grad_epoch/global/abs_q50", 1)]  # seeds 1 and 2: mean 1.5
    assert (float(remedy["mean"]), float(remedy["q25"]), float(remedy["q75"])) == (1.5, 1.25, 1.75)
    assert len(rows) == 2 * 4 * 2  # arms × (val/acc + 3 gradient tags) × epochs
    runs = _by_key([r for r in read_csv(out / "figA_runs.csv") if r["seed"] == "2"])
    assert float(runs[("plain", "grad_epoch/global/abs_q50", 2)]["value"]) == pytest.approx(8e-3)
    assert int(runs[("plain", "grad_epoch/global/abs_q50", 2)]["step"]) == 2 * STEPS
    image = matplotlib.image.imread(out / "figA.png")
    assert image.shape[:2] == (900, 840)  # 7.5 × 7 inches at 120 dpi


@QUIET
def test_runtime_table_ratios(sweep, tmp_path):
    out = figures.make_figures(sweep, tmp_path / "figs")
    rows = {r["arm"]: r for r in read_csv(out / "runtime.csv")}
    assert float(rows["plain"]["wall_time_s"]) == 12.0  # mean of 10, 14, 12
    assert float(rows["remedy"]["ratio_same_act"]) == 15.0 / 12.0
    assert float(rows["remedy"]["ratio_plain_sigmoid"]) == 15.0 / 12.0
    assert rows["remedy"]["baseline_same_act"] == "plain"
    # fit time: last val/acc (written as first event + ~20 s) minus the file's first event
    fit = [_last_acc_wall(sweep / "figA" / "plain" / f"seed_{s}") - _first_event_wall(
        sweep / "figA" / "plain" / f"seed_{s}") for s in range(3)]
    assert float(rows["plain"]["fit_time_s"]) == pytest.approx(sum(fit) / 3, rel=1e-9)
    assert 19.0 < float(rows["plain"]["fit_time_s"]) <= 20.0
    table = (out / "runtime.md").read_text()
    assert "| figA | remedy | tanh | 2.000 | 0.010 | 2 | 15.0 | " in table
    assert "| 1.25 (vs plain) | 1.25 (vs plain) |" in table


def _events(run_path):
    (file,) = run_path.glob("events.out.tfevents.*")
    return list(EventFileLoader(str(file)).Load())


def _first_event_wall(run_path):
    return _events(run_path)[0].wall_time


def _last_acc_wall(run_path):
    return max(e.wall_time for e in _events(run_path)
               if any(v.tag == "val/acc" for v in e.summary.value))


def _run(arm, activation, alpha=1.0, r=0.0, learnable=False):
    hparams = {"activation": activation, "alpha": alpha, "l2_strength": r,
               "learnable_alpha": learnable}
    return RunLog("fig3", arm, 0, None, {}, {"wall_time_s": 1.0}, hparams)


def test_baseline_rule_of_the_paper_figures():
    runs = [_run("tanh", "tanh"), _run("tanh_reg_scaled", "tanh", 2.0, 0.01),
            _run("relu", "relu"), _run("relu_reg", "relu", 1.0, 0.01),
            _run("learned", "tanh", 1.0, 0.0, learnable=True)]
    base = baselines(arm_settings(runs))
    assert base == {"tanh": ("tanh", "tanh"), "tanh_reg_scaled": ("tanh", "tanh"),
                    "relu": ("relu", "tanh"), "relu_reg": ("relu", "tanh"),
                    "learned": ("tanh", "tanh")}
    logistic = baselines(arm_settings([_run("sigmoid", "logistic"),
                                       _run("sigmoid_reg_scaled", "sigmoid", 2.0, 0.01)]))
    assert logistic["sigmoid_reg_scaled"] == ("sigmoid", "sigmoid")
    ambiguous = baselines(arm_settings([_run("a", "tanh"), _run("b", "tanh")]))
    assert ambiguous["a"] == (None, None)
    assert runtime_rows([_run("a", "tanh"), _run("b", "tanh")])[0]["ratio_same_act"] is None


@QUIET
def test_missing_runs_epochs_and_markers_warn(sweep, tmp_path):
    (sweep / "figA" / "sweep.json").write_text(
        json.dumps({"arms": ["plain", "remedy"], "seeds": [0, 1, 2], "epochs": 2}))
    write_run(sweep, "figA", "remedy", 2, [0.25], {"abs_q50": [3.0]}, REMEDY, wall=None)
    with pytest.warns(SweepDataWarning) as record:
        out = figures.make_figures(sweep, tmp_path / "figs")
    messages = " | ".join(str(w.message) for w in record)
    assert "remedy/seed_2 has no DONE marker" in messages
    assert "remedy/seed_2 logged val/acc for 1 of 2 epochs" in messages
    rows = _by_key(read_csv(out / "figA.csv"))
    assert int(rows[("remedy", "val/acc", 1)]["n_seeds"]) == 3
    assert float(rows[("remedy", "val/acc", 1)]["mean"]) == pytest.approx(1.25 / 3)
    assert int(rows[("remedy", "val/acc", 2)]["n_seeds"]) == 2
    (sweep / "figA" / "sweep.json").write_text(
        json.dumps({"arms": ["plain", "remedy", "gone"], "seeds": [0, 1, 2, 3], "epochs": 2}))
    with pytest.warns(SweepDataWarning, match=r"6 run\(s\) missing: plain/seed_3, remedy/seed_3, "
                                               r"gone/seed_0"):
        load_figure(sweep, "figA", ["val/acc"])


def test_without_gradient_tags_warns_and_draws_accuracy(tmp_path, capsys):
    root = tmp_path / "sweep"
    for seed in range(2):
        write_run(root, "figB", "plain", seed, [0.25, 0.5], None, PLAIN, wall=3.0)
    assert figures.main([str(root), "--out", str(tmp_path / "figs")]) == 0
    assert "no run logged grad_epoch/global/abs_q25, grad_epoch/global/abs_q50" in \
        capsys.readouterr().err
    rows = read_csv(tmp_path / "figs" / "figB.csv")
    assert {r["tag"] for r in rows} == {"val/acc"} and len(rows) == 2
    assert (tmp_path / "figs" / "figB.png").stat().st_size > 10_000


def test_several_events_per_epoch_warn(tmp_path):
    path = tmp_path / "sweep" / "figC" / "arm" / "seed_0"
    writer = SummaryWriter(str(path))
    for step, epoch in [(4, 0), (9, 0), (14, 1), (19, 1)]:  # val_check_interval = 0.5
        writer.add_scalar("val/acc", 0.5, step)
        writer.add_scalar("epoch", epoch, step)
    writer.close()
    (path / "DONE").write_text("{}")
    with pytest.warns(SweepDataWarning, match="val/acc has 4 events but the run logged 2 epochs"):
        runs = load_figure(tmp_path / "sweep", "figC", ["val/acc"])
    assert [p.epoch for p in runs[0].series["val/acc"]] == [1, 2, 3, 4]


@QUIET
def test_bad_sweep_dir_and_figure(sweep, tmp_path, capsys):
    with pytest.raises(ValueError, match="is not a folder"):
        figures.make_figures(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"\['figZ'\] not found .* found: figA"):
        figures.make_figures(sweep, figures=["figZ"])
    assert figures.main([str(sweep), "--figures", "figZ"]) == 2
    assert "found: figA" in capsys.readouterr().err
    figures.make_figures(sweep)  # default out: <sweep>/figures, not mistaken for a figure later
    assert sorted(p.name for p in (sweep / "figures").iterdir()) == \
        ["figA.csv", "figA.png", "figA_runs.csv", "runtime.csv", "runtime.md"]
    figures.make_figures(sweep)


def test_seed_wall_time_of_members_is_the_group_share():
    from lightning_sig.experiments.figure_table import seed_wall_time
    assert seed_wall_time({"wall_time_s": 12.0}) == 12.0
    assert seed_wall_time({"wall_time_s": 12.0, "members": [0, 1, 2]}) == 4.0
    assert seed_wall_time({"wall_time_s": 12.0, "members": []}) == 12.0


def test_grad_source_data_plots_data_gradient_and_falls_back_for_r0(tmp_path, capsys):
    root = tmp_path / "sweep"
    write_run(root, "figA", "plain", 0, [0.1, 0.2], {"abs_q50": [1e-3, 2e-3]}, PLAIN)
    path = write_run(root, "figA", "remedy", 0, [0.5, 0.6], {"abs_q50": [0.5, 0.25]}, REMEDY)
    writer = SummaryWriter(str(path))  # the remedied arm's data-loss gradient (r > 0)
    for e, value in enumerate([0.125, 0.0625]):
        writer.add_scalar("grad_data_epoch/global/abs_q50", value, (e + 1) * STEPS)
    writer.close()
    out = figures.make_figures(root, tmp_path / "figs", grad_stats=["abs_q50"], grad_source="data")
    rows = _by_key(read_csv(out / "figA.csv"))
    tag = "grad_data_epoch/global/abs_q50"
    assert [float(rows[("remedy", tag, e)]["mean"]) for e in (1, 2)] == [0.125, 0.0625]
    assert [float(rows[("plain", tag, e)]["mean"]) for e in (1, 2)] == pytest.approx([1e-3, 2e-3])
    total = figures.make_figures(root, tmp_path / "figs2", grad_stats=["abs_q50"])
    rows = _by_key(read_csv(total / "figA.csv"))
    assert float(rows[("remedy", "grad_epoch/global/abs_q50", 1)]["mean"]) == 0.5
    with pytest.raises(ValueError, match="grad source 'both'"):
        figures.make_figures(root, tmp_path / "figs3", grad_source="both")
    with pytest.raises(SystemExit) as exit_info:  # argparse's choices
        figures.main([str(root), "--grad-source", "both"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'both'" in capsys.readouterr().err


def test_depth_profile_rows_in_forward_order(tmp_path):
    root = tmp_path / "sweep"
    for seed in range(2):
        path = write_run(root, "figA", "plain", seed, [0.1, 0.2], {"abs_q50": [1e-3, 2e-3]}, PLAIN)
        writer = SummaryWriter(str(path))
        for e in range(2):  # layers written as the callback does: in forward order, one event
            for layer, value in (("net.z_first", 1e-4), ("net.a_second", 1e-2)):
                writer.add_scalar(f"grad_epoch/{layer}/abs_q50", value * (e + 1) * (seed + 1),
                                  (e + 1) * STEPS)
        writer.close()
    out = figures.make_figures(root, tmp_path / "figs", grad_stats=["abs_q50"])
    rows = read_csv(out / "figA_depth.csv")
    got = {(r["layer_index"], r["layer"], r["epoch"]): float(r["mean"]) for r in rows}
    assert got == pytest.approx({("0", "net.z_first", "1"): 1.5e-4, ("1", "net.a_second", "1"): 1.5e-2,
                                 ("0", "net.z_first", "2"): 3e-4, ("1", "net.a_second", "2"): 3e-2})
    assert (out / "figA_depth.png").is_file()


def test_figure_layout_integer_epochs_legends_outside_and_seed_count():
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = {arm: [{"epoch": e, "n_seeds": 3, "mean": 0.1 * e, "median": 0.1 * e, "q25": 0.09 * e,
                   "q75": 0.11 * e} for e in range(1, 8)] for arm in ("plain", "remedy")}
    aggregated = {"val/acc": rows, "grad_epoch/global/abs_q25": rows,
                  "grad_epoch/global/abs_q50": rows}
    fig, top, bottom = figures_draw.draw_figure("figA", aggregated, ["plain", "remedy"], {},
                                           ["grad_epoch/global/abs_q25", "grad_epoch/global/abs_q50"])
    try:
        fig.canvas.draw()
        low, high = bottom.get_xlim()
        ticks = [t for t in bottom.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks)
        assert bottom.xaxis.get_major_locator()._integer
        renderer = fig.canvas.get_renderer()
        assert len(fig.legends) == 2 and not top.get_legend() and not bottom.get_legend()
        for legend in fig.legends:
            box = legend.get_window_extent(renderer)
            for ax in (top, bottom):
                assert not box.overlaps(ax.get_window_extent(renderer))
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert labels == ["plain, n=3", "remedy, n=3"]
        assert "interquartile range over seeds; n=3 seeds per arm" in top.get_title()
        lines = top.get_lines()  # arms that overlap differ in line style and marker
        assert lines[0].get_linestyle() != lines[1].get_linestyle()
        assert lines[0].get_marker() != lines[1].get_marker()
        assert len(bottom.collections) == 2  # bands for the median statistic only, one per arm
    finally:
        plt.close(fig)


def _median_fixture(folder, commits=("a" * 40,) * 4, denormals=("ftz",) * 4):
    """figM, arm "remedy", 4 seeds as summaries: median |g| 1e-7 in three seeds and 1e-2 in the
    one that took off (its accuracy 0.4); arm "plain" 4 seeds at 1e-7."""
    from tests.summary_fakes import json_summary, write_json_summary
    for s in range(4):
        took_off = s == 3
        write_json_summary(folder, json_summary(
            "figM", "remedy", s, [0.4 if took_off else 0.1] * 2, commit=commits[s],
            denormals=denormals[s], g50=[1e-2 if took_off else 1e-7 * (1 + s)] * 2))
        write_json_summary(folder, json_summary("figM", "plain", s, [0.1] * 2, g50=[1e-7] * 2))


def test_gradient_lines_are_medians_over_seeds_inside_their_band(tmp_path):
    _median_fixture(tmp_path / "s")
    out = figures.make_figures(tmp_path / "s", tmp_path / "figs", grad_stats=["abs_q50"])
    rows = _by_key(read_csv(out / "figM.csv"))
    g = rows[("remedy", "grad_epoch/global/abs_q50", 1)]
    # seeds 1e-7, 2e-7, 3e-7, 1e-2: median 2.5e-7; "linear" q25 = 1.75e-7, q75 = 3e-7 + 0.25 · (1e-2 − 3e-7)
    assert float(g["median"]) == pytest.approx(2.5e-7, rel=1e-6)
    assert float(g["q25"]) == pytest.approx(1.75e-7, rel=1e-6)
    assert float(g["q75"]) == pytest.approx(3e-7 + 0.25 * (1e-2 - 3e-7), rel=1e-6)
    assert float(g["mean"]) == pytest.approx((6e-7 + 1e-2) / 4, rel=1e-6)  # above q75: not drawn
    from lightning_sig.experiments.summary import load_summaries
    from lightning_sig.experiments.figure_data import aggregate
    runs = load_summaries(tmp_path / "s", "figM")
    tag = "grad_epoch/global/abs_q50"
    aggregated = {t: aggregate(runs, t) for t in ("val/acc", tag)}
    fig, top, bottom = figures_draw.draw_figure("figM", aggregated, ["plain", "remedy"], {}, [tag])
    try:
        remedy_line = bottom.get_lines()[1]
        assert list(remedy_line.get_ydata()) == pytest.approx([2.5e-7] * 2, rel=1e-6)
        assert list(top.get_lines()[1].get_ydata()) == pytest.approx([0.175] * 2)  # accuracy: mean
        assert "top: mean, bottom: median over seeds" in top.get_title()
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)


def test_per_seed_lines(tmp_path):
    _median_fixture(tmp_path / "s")
    from lightning_sig.experiments.summary import load_summaries
    from lightning_sig.experiments.figure_data import aggregate, per_seed
    runs = load_summaries(tmp_path / "s", "figM")
    tag = "grad_epoch/global/abs_q50"
    aggregated = {t: aggregate(runs, t) for t in ("val/acc", tag)}
    seeds = {t: per_seed(runs, t) for t in ("val/acc", tag)}
    fig, top, bottom = figures_draw.draw_figure("figM", aggregated, ["plain", "remedy"], {}, [tag],
                                           seeds)
    try:  # 2 arms × 4 seeds thin lines + 2 aggregate lines per panel
        for ax in (top, bottom):
            widths = sorted(line.get_linewidth() for line in ax.get_lines())
            assert widths == [figures_draw.SEED_LINEWIDTH] * 8 + [1.4, 1.4]
        thin = [l for l in bottom.get_lines() if l.get_linewidth() == figures_draw.SEED_LINEWIDTH]
        assert sorted(l.get_ydata()[0] for l in thin)[-1] == pytest.approx(1e-2)
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)
    assert figures.main([str(tmp_path / "s"), "--out", str(tmp_path / "f"), "--per-seed"]) == 0


def test_mixed_code_is_refused_unless_allowed_and_then_written_on_the_figure(tmp_path, capsys):
    _median_fixture(tmp_path / "s", denormals=("ftz", "ftz", "ieee", "ftz"))
    assert figures.main([str(tmp_path / "s"), "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "figM: mixed code: plain commit aaaaaaaaaaaa ftz (seeds 0-3); remedy commit " \
        "aaaaaaaaaaaa ftz (seeds 0-1,3), commit aaaaaaaaaaaa ieee (seeds 2)" in err
    from lightning_sig.experiments.provenance_check import figure_code_note
    from lightning_sig.experiments.summary import load_summaries
    runs = load_summaries(tmp_path / "s", "figM")
    note = figure_code_note("figM", runs, allow_mixed=True)
    assert note == "MIXED CODE (--allow-mixed-code): aaaaaaaaaaaa ftz, aaaaaaaaaaaa ieee"
    fig, _, _ = figures_draw.draw_figure("figM", {}, ["plain", "remedy"], {}, [], code_note=note)
    try:
        assert [t.get_text() for t in fig.texts] == [note]
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)
    assert figures.main([str(tmp_path / "s"), "--out", str(tmp_path / "f"),
                         "--allow-mixed-code"]) == 0
    assert figure_code_note("figM", [r for r in runs if r.seed != 2]) is None
