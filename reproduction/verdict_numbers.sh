#!/usr/bin/env bash
# Every number of REPRODUCTION.md's verdicts, from the run summaries alone (no event files).
# Usage, from the repository root:  reproduction/verdict_numbers.sh [SUMMARIES] > /tmp/numbers.md
# SUMMARIES defaults to reproduction/full; ALT (the assumption runs) to reproduction/alternatives.
# Runs in a few seconds; prints Markdown tables. An arm or figure without summaries yet prints a
# note instead of its tables.
set -u
cd "$(dirname "$0")/.."
S="${1:-reproduction/full}"  # relative to the repository root, or absolute
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's package, not an install
NICE="nice -n 19"

run() {  # echo the command, then its tables (or why there are none)
    echo; echo '```'; echo "$*"; echo '```'; echo
    $NICE "$@" 2>&1 | grep -v '^Traceback\|^  File\|^    ' || true
}
acc() { run python -m lightning_sig.experiments.arm_stats "$S" "$@"; }
seeds() { run python reproduction/seed_stats.py "$S" "$@"; }

echo "# Verdict numbers from $S ($(date -u +%F\ %T) UTC, $(git describe --always --dirty))"

echo; echo "## Figure 1 (Sec. 3.1)"
acc fig1_large_params --arms regularized unregularized --epochs 1 5 8 10 12 20 30
seeds --arms fig1_large_params/regularized fig1_large_params/unregularized \
    --epochs 1 2 5 8 10 20 30 --stats abs_q50 abs_q100 vanishing_frac --log-ratio abs_q50

echo; echo "## Figure 2 (Sec. 3.2)"
acc fig2_many_layers --arms scaled unscaled --epochs 1 2 3 5 10 20 30
seeds --arms fig2_many_layers/scaled fig2_many_layers/unscaled \
    --epochs 1 2 5 10 20 30 --stats abs_q50 abs_q100 vanishing_frac --log-ratio abs_q50

echo; echo "## Figure 3 (Sec. 3.3), tanh arms"
acc fig3_combined --arms tanh_reg_scaled tanh --epochs 1 5 10 15 20 30
seeds --arms fig3_combined/tanh_reg_scaled fig3_combined/tanh \
    --epochs 1 5 10 15 20 30 --stats abs_q50 abs_q100 vanishing_frac --log-ratio abs_q50

echo; echo "## Figure 3 (Sec. 3.3), relu arms"
acc fig3_combined --arms tanh_reg_scaled relu --epochs 1 5 10 15 20 30
acc fig3_combined --arms tanh_reg_scaled relu_reg --epochs 1 5 10 15 20 30
acc fig3_combined --arms relu_reg relu --epochs 1 5 10 15 20 30
seeds --arms fig3_combined/relu_reg fig3_combined/relu \
    --epochs 1 5 10 15 20 30 --stats abs_q50 abs_q100 vanishing_frac --log-ratio abs_q50

echo; echo "## Figure 4 (Appendix C)"
acc fig4_logistic --arms sigmoid_reg_scaled sigmoid --epochs 1 5 10 15 20 30
seeds --arms fig4_logistic/sigmoid_reg_scaled fig4_logistic/sigmoid \
    --epochs 1 5 10 15 20 30 --stats abs_q50 abs_q100 vanishing_frac --log-ratio abs_q50
echo; echo "Figure 4 against Figure 3 (\"virtually the same results as before\"):"
seeds --arms fig4_logistic/sigmoid_reg_scaled fig3_combined/tanh_reg_scaled \
    --epochs 1 5 10 15 20 30 --stats --acc-diff
seeds --arms fig4_logistic/sigmoid fig3_combined/tanh --epochs 1 5 10 15 20 30 --stats --acc-diff

echo; echo "## Table 4 analog (wall time per arm from the summaries' DONE records)"
T="$(mktemp -d)"
echo; echo '```'; echo "python -m lightning_sig.figures $S --out TMPDIR && cat TMPDIR/runtime.md"; echo '```'; echo
$NICE python -m lightning_sig.figures "$S" --out "$T" > /dev/null 2>&1 && cat "$T/runtime.md"
rm -rf "$T"

echo; echo "## Assumption runs (3 seeds x 30 epochs, against the same seeds of the main study)"
A="${ALT:-reproduction/alternatives}"  # assumption runs; override with ALT=...
run python reproduction/alt_numbers.py "$A/keras_l2" "$S" fig1_large_params/regularized \
    --epochs 1 5 8 10 12 20 30
run python reproduction/alt_numbers.py "$A/keras_adam_eps" "$S" fig1_large_params/unregularized \
    --epochs 1 5 8 10 12 20 30

echo; echo "## Study time (process wall time per member group, from the summaries' markers)"
run python reproduction/study_time.py "$S" --since 2026-12-01T23:00 --project 4500 --procs 2
