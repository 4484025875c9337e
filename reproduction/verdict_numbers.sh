#!/usr/bin/env bash
# The pre-registered verdicts (reproduction/PREREGISTRATION.md) and the exploratory numbers,
# from the run summaries alone (no event files), as Markdown on stdout.
#
# Usage, from anywhere in a checkout installed with `pip install -e .` (README):
#   reproduction/verdict_numbers.sh [SUMMARIES] [--allow-mixed-code] [--min-pairs N] [--primary-only] > verdicts.md
# --primary-only: the paper's claims alone, reading no arm beyond the paper (while those runs go on).
# SUMMARIES defaults to reproduction/study (relative to the repository root, or absolute).
# The 10-seed pilot: reproduction/verdict_numbers.sh reproduction/full --allow-mixed-code --min-pairs 10
# (its summaries have no provenance, and 10 < the pre-registered 20 pairs; the output says so).
# ALT (default reproduction/alternatives) holds the assumption runs, compared seed by seed with
# ALT_REF (default reproduction/full, the pilot: the same seeding as those runs).
# PYTHON (default python) is the interpreter.
#
# Fails (non-zero exit, message on stderr) on any error: the package not importable from this
# checkout, no summaries, unreadable summaries, arms of one comparison run on different commits
# or denormal modes or without provenance (unless --allow-mixed-code; exit 3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
S="reproduction/study"
if [[ $# -gt 0 && "$1" != --* ]]; then S="$1"; shift; fi

if ! where="$("$PY" -c 'import lightning_sig, scipy, os; print(os.path.dirname(os.path.dirname(os.path.realpath(lightning_sig.__file__))))' 2>&1)"; then
    echo "verdict_numbers.sh: cannot import lightning_sig and scipy with '$PY':" >&2
    echo "$where" | tail -n 1 >&2
    echo "Install this checkout first (README): python -m pip install -e ." >&2
    exit 2
fi
if [[ "$where" != "$(pwd -P)" ]]; then
    echo "verdict_numbers.sh: '$PY' imports lightning_sig from $where, not from this checkout" \
         "($(pwd -P)); run 'python -m pip install -e .' here or use another PYTHON" >&2
    exit 2
fi
if [[ ! -d "$S" ]]; then
    echo "verdict_numbers.sh: no summaries folder '$S'" >&2
    exit 2
fi

NICE="nice -n 19"
$NICE "$PY" -m lightning_sig.experiments.verdict_report "$S" "$@"

A="${ALT:-reproduction/alternatives}"
# The assumption runs used the pilot's seeding (before lightning_sig/seeds.py), so they pair by
# seed with the pilot's runs (same initialisation and data order), not with the study's.
R="${ALT_REF:-reproduction/full}"
if [[ -d "$A/keras_l2" && -d "$A/keras_adam_eps" && -d "$R" ]]; then
    echo; echo "## Assumption runs (exploratory; against the same seeds of $R)"
    for spec in "keras_l2 fig1_large_params/regularized" "keras_adam_eps fig1_large_params/unregularized"; do
        set -- $spec
        echo; echo '```'; echo "python reproduction/alt_numbers.py $A/$1 $R $2 --epochs 1 5 8 10 12 20 30"
        echo '```'; echo
        $NICE "$PY" reproduction/alt_numbers.py "$A/$1" "$R" "$2" --epochs 1 5 8 10 12 20 30
    done
fi
