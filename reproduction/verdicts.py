"""The pre-registered verdicts (reproduction/PREREGISTRATION.md): a thin entry point to
``python -m lightning_sig.experiments.verdict_report`` (same arguments), which
``reproduction/verdict_numbers.sh`` runs.

Usage (from the repository root, after ``pip install -e .``)::

    python reproduction/verdicts.py [reproduction/study] [--allow-mixed-code] [--min-pairs N]
"""
from lightning_sig.experiments.verdict_report import main

if __name__ == "__main__":
    raise SystemExit(main())
