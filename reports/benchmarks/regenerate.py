"""Regenerate reports/benchmarks/README.md and figures/gains.png: every method on both embedded benchmarks side by side
(paired gains with intervals, rankings, reversals, small classes; nbs/11b_benchmarks.ipynb). Reads only the committed run
folders (reports/runs/minicity, reports/runs/shiftcity); trains and evaluates nothing (seconds).
Run from anywhere:  python reports/benchmarks/regenerate.py"""
import os, sys
from pathlib import Path
root = Path(__file__).resolve().parents[2]
os.chdir(root)
try: from cda_nb.benchmarks import write_benchmarks
except ImportError: sys.exit("cda_nb not found: install the kit first (see README.md) and activate its venv")
print(write_benchmarks("reports/runs", ["minicity", "shiftcity"], "reports"))
