"""The pre-registered verdict script on small fake summaries with hand-computed outcomes
(``lightning_sig/experiments/verdict_*.py``, ``reproduction/verdict_numbers.sh``)."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_sig.experiments import verdict_report as vr
from lightning_sig.experiments.verdict_parts import Arm, Hypothesis, Part, explodes, verdict
from tests.summary_fakes import json_summary as record, write_json_summary as write

ROOT = Path(__file__).resolve().parents[1]
N_EPOCHS = 30


def figure1(folder: Path, seeds=range(12), **kw) -> None:
    """Regularized: acc +0.1 + 0.01·s from epoch 10, within ±0.001 of chance before; g50 twice
    the unregularized one's at epoch 1, 1e-4 at epoch 30; no vanishing coordinates (unreg 0.5)."""
    for s in seeds:
        acc = [0.1 + 0.001 * (s % 3 - 1) if e < 10 else 0.2 + 0.01 * s for e in range(1, 31)]
        g50 = [2e-3 * (1 + 0.01 * s)] + [1e-3] * 28 + [1e-4]
        write(folder, record("fig1_large_params", "regularized", s, acc, l2=0.01, g50=g50,
                             g50data=[1e-3] * N_EPOCHS, vfdata=[0.0] * N_EPOCHS, **kw))
        write(folder, record("fig1_large_params", "unregularized", s, [0.1] * N_EPOCHS,
                             vf=[0.5] * N_EPOCHS, **kw))


def test_figure1_verdicts_by_hand(tmp_path):
    figure1(tmp_path)
    claims = vr.evaluate(vr.Arms(tmp_path), min_pairs=2)
    outcome = {c.cid: c.outcome for c in claims["primary"]}
    assert outcome["F1.1"] == outcome["F1.2"] == outcome["F1.5"] == outcome["F1.6"] == "reproduced"
    assert outcome["F1.3"] == "mixed"  # total g50 ×2 in every seed, data-loss g50 equal
    assert outcome["F2.1"] == outcome["F4"] == "not testable"  # no summaries
    tests = {t.pid: t for c in claims["primary"] for t in c.tests}
    p2 = tests["P2"]  # 12 positive differences: exact sign-flip p = 2 / 2^12 at each epoch
    assert [round(p.effect, 12) for p in p2.parts] == [0.155] * 3
    assert p2.p == pytest.approx(2 / 4096)
    # Holm over 16: P1 (TOST, p ~ 1e-16) first, then P2, P3, P5, P6 tied at 2/4096 -> 15 · p
    assert p2.p_holm == pytest.approx(15 * 2 / 4096)
    # ratio of geometric means: 2 · (prod of 1 + 0.01 s)^(1/12)
    geo = math.exp(sum(math.log1p(0.01 * s) for s in range(12)) / 12)
    assert tests["P3"].parts[0].effect == pytest.approx(2 * geo, rel=1e-12)
    assert tests["P4"].p == pytest.approx(1.0) and not tests["P4"].passed
    assert tests["P9"].p_holm == 1.0 and not tests["P9"].testable
    text = vr.report(tmp_path, min_pairs=2, exploratory=False)
    assert "| P2 | F1.2 | acc(10) regularized − unregularized | 12 | +0.155 [" in text
    assert "DEVIATION: --min-pairs 2" in text and "WARNING" not in text


def test_takeoff_test_of_figure2_by_hand(tmp_path):
    # scaled take-off epochs 1, 2, never, 5; unscaled never, never, never, 6:
    # d = 30, 29, 0, 1 -> mean 15, exact sign-flip p = 4 / 16 (the zero's sign is free)
    for s, (ta, tb) in enumerate([(1, 31), (2, 31), (31, 31), (5, 6)]):
        for arm, t in (("scaled", ta), ("unscaled", tb)):
            acc = [0.3 if e >= t else 0.1 for e in range(1, 31)]
            write(tmp_path, record("fig2_many_layers", arm, s, acc))
    claims = vr.evaluate(vr.Arms(tmp_path), min_pairs=2)
    f22 = next(c for c in claims["primary"] if c.cid == "F2.2")
    part = f22.tests[0].parts[0]
    assert (part.n, part.effect, part.counts, part.p) == (4, 15.0, (3, 0, 1), pytest.approx(0.25))
    f23 = next(c for c in claims["primary"] if c.cid == "F2.3")
    assert f23.conditions[0][1] is False and "2/4 seeds" in f23.conditions[0][0]


def test_mixed_commits_or_modes_are_refused_and_named(tmp_path, capsys):
    figure1(tmp_path, seeds=range(3))
    write(tmp_path, record("fig1_large_params", "unregularized", 1, [0.1] * 30, commit="b" * 40))
    assert vr.main([str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "fig1_large_params/regularized vs fig1_large_params/unregularized: mixed code" in err
    assert "commit bbbbbbbbbbbb ftz (seeds 1)" in err and "commit aaaaaaaaaaaa ftz (seeds 0,2)" in err
    assert vr.main([str(tmp_path), "--allow-mixed-code", "--min-pairs", "2"]) == 0
    out = capsys.readouterr().out
    assert "Not the pre-registered analysis" in out and "WARNING (--allow-mixed-code)" in out
    write(tmp_path, record("fig1_large_params", "unregularized", 1, [0.1] * 30, denormals="ieee"))
    assert vr.main([str(tmp_path)]) == 3
    assert "commit aaaaaaaaaaaa ieee (seeds 1)" in capsys.readouterr().err


def test_schema1_without_provenance_needs_the_flag(tmp_path, capsys):
    figure1(tmp_path, seeds=range(3), schema=1)
    assert vr.main([str(tmp_path), "--no-exploratory"]) == 3
    assert ("fig1_large_params/regularized: provenance missing (schema lightning_sig.run_summary/1?)"
            " for seeds 0-2") in capsys.readouterr().err
    assert vr.main([str(tmp_path), "--allow-mixed-code", "--no-exploratory"]) == 0
    out = capsys.readouterr().out
    assert "provenance missing" in out and "**not testable**" in out  # 3 < 20 pairs
    assert vr.main([str(tmp_path / "nothing")]) == 2


def test_verdict_rules():
    def test(effect, p_holm, sign=+1):
        t = Hypothesis("P", [Part("x", 25, effect, 0, 0, "diff", (0, 0, 0), p_holm, sign)])
        t.p_holm = p_holm
        return t
    ok, weak, against = test(0.1, 0.01), test(0.1, 0.2), test(-0.1, 0.01)
    assert verdict("main", [ok], [("c", True)]) == "reproduced"
    assert verdict("main", [ok], [("c", False)]) == "mixed"
    assert verdict("main", [ok, weak], []) == "mixed"
    assert verdict("main", [weak, ok], []) == "not reproduced"
    assert verdict("main", [against], []) == "not reproduced (contradicted)"
    assert verdict("parts", [weak], [("c", True)]) == "mixed"
    assert verdict("parts", [weak, weak], [("c", None)]) == "not reproduced"
    assert verdict("main", [Hypothesis("P", [], testable=False)], []) == "not testable"


def test_explosion_criterion_and_missing_data_loss_series():
    rec = record("f", "a", 0, [0.1] * 3, gmax=[1.0, 99.0, 100.0])
    arm = Arm("f/a", {0: rec})
    assert not explodes(arm, 0)  # at most 100 × epoch 1
    arm.records[0]["series"]["grad_epoch/global/abs_q100"]["value"] = [1.0, 100.5, 1.0]
    assert explodes(arm, 0)
    rec2 = record("f", "a", 1, [0.1] * 3, nonfinite=[0, 2, 0])
    rec3 = record("f", "a", 2, [0.1] * 3, loss=[2.0, float("nan"), 1.0])
    arm = Arm("f/a", {1: rec2, 2: rec3})
    assert explodes(arm, 1) and explodes(arm, 2)
    with pytest.raises(ValueError, match=r"f/a has r = \[0.01\] but no grad_data_epoch"):
        Arm("f/a", {0: record("f", "a", 0, [0.1] * 3, l2=0.01)}).data_tag("abs_q50")


def test_verdict_numbers_sh_fails_loudly(tmp_path):
    figure1(tmp_path, seeds=range(3))
    write(tmp_path, record("fig1_large_params", "unregularized", 1, [0.1] * 30, commit="b" * 40))
    env = {**os.environ, "PYTHON": sys.executable, "ALT": str(tmp_path / "none")}
    script = str(ROOT / "reproduction" / "verdict_numbers.sh")
    done = subprocess.run(["bash", script, str(tmp_path)], env=env, capture_output=True, text=True)
    assert done.returncode == 3 and "mixed code" in done.stderr
    done = subprocess.run(["bash", script, str(tmp_path / "missing")], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 2 and "no summaries folder" in done.stderr
    done = subprocess.run(["bash", script, str(tmp_path), "--allow-mixed-code", "--min-pairs", "2"],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "| F1.2 |" in done.stdout


def test_s2_explosions_of_the_new_alpha_arms(tmp_path):
    # α = 4: no explosion in 2 seeds; α = 8: seed 1's max |g| grows 1 -> 150 (> 100×)
    for arm, gmax in (("alpha4", [[1.0] * 30] * 2), ("alpha8", [[1.0] * 30, [1.0] + [150.0] * 29])):
        for s, g in enumerate(gmax):
            write(tmp_path / "beyond", record("fig2_alpha", arm, s, [0.1] * 30, gmax=g))
    s2 = next(c for c in vr.evaluate(vr.Arms(tmp_path))["descriptive"] if c.cid == "S2")
    assert s2.outcome == "partly supported"  # 1 of 4 runs: at most 2 -> "mixed"
    assert s2.conditions[0][0].startswith("seeds exploding: 1/4")


def test_secondary_arms_are_read_from_beyond_and_have_their_own_holm(tmp_path):
    # σ + r (beyond/fig4_remedies) − σ at epoch 30: +0.06 + 0.01·s in 8 seeds, all positive:
    # exact sign-flip p = 2/256; Holm over the 4 secondary tests (3 untestable, p = 1): 4 · p
    for s in range(8):
        write(tmp_path, record("fig4_logistic", "sigmoid", s, [0.1] * 30))
        write(tmp_path / "beyond", record("fig4_remedies", "sigmoid_reg", s,
                                          [0.1] * 29 + [0.16 + 0.01 * s]))
    claims = {c.cid: c for c in vr.evaluate(vr.Arms(tmp_path))["secondary"]}
    s3 = claims["S3"].tests[0]
    assert s3.parts[0].effect == pytest.approx(0.095) and s3.p == pytest.approx(2 / 256)
    assert s3.p_holm == pytest.approx(4 * 2 / 256)
    assert claims["S3"].outcome == "supported"
    assert claims["S4"].outcome == "not testable"
    assert "no summaries for beyond/fig4_remedies/sigmoid_scaled" in claims["S4"].tests[0].note


def test_primary_only_reads_no_arm_beyond_the_paper(tmp_path):
    # the S3 data of the test above plus Figure 1: --primary-only keeps P1-P16 and D1-D3 and
    # leaves S1-S5 (S2 included) and the new arms' exploratory pair out
    figure1(tmp_path, seeds=range(8))
    for s in range(8):
        write(tmp_path, record("fig4_logistic", "sigmoid", s, [0.1] * 30))
        write(tmp_path / "beyond", record("fig4_remedies", "sigmoid_reg", s,
                                          [0.1] * 29 + [0.16 + 0.01 * s]))
    full = vr.report(tmp_path, min_pairs=8)
    assert "| S3 | S3 | acc(30) sigmoid_reg − sigmoid" in full
    assert "beyond/fig4_remedies/sigmoid_reg (A) vs fig4_logistic/sigmoid (B)" in full
    text = vr.report(tmp_path, min_pairs=8, primary_only=True)
    assert "Not computed (--primary-only)" in text
    assert "fig4_remedies" not in text and "| S2 |" not in text and "| S3 |" not in text
    claims = vr.evaluate(vr.Arms(tmp_path, paper_only=True), 8)
    assert claims["secondary"] == [] and [c.cid for c in claims["descriptive"]] == [
        "D1 (F1.4)", "D2 (F2.5)", "D3"]
    # the paper's tests are unchanged by the flag: F1.2's P2 has the same p either way
    p2 = {c.cid: c for c in vr.evaluate(vr.Arms(tmp_path), 8)["primary"]}["F1.2"].tests[0]
    assert p2.p == {c.cid: c for c in claims["primary"]}["F1.2"].tests[0].p
