"The committed cross-benchmark report (reports/benchmarks/README.md) is what `write_benchmarks` makes of the committed run folders."
from conftest import ROOT
from cda_nb.benchmarks import write_benchmarks, load_benchmarks

def test_committed_benchmarks_report_is_current(tmp_path):
    p = write_benchmarks(ROOT/"reports/runs", ["minicity", "shiftcity"], tmp_path)
    assert p.read_text() == (ROOT/"reports/benchmarks/README.md").read_text(), \
        "reports/benchmarks/README.md is stale: run `python reports/benchmarks/regenerate.py` and commit it"
    assert (tmp_path/"benchmarks/figures/gains.png").stat().st_size > 20_000

def test_both_benchmarks_have_three_seeds_of_every_method():
    b = load_benchmarks(ROOT/"reports/runs", ["minicity", "shiftcity"])
    for d in b:
        for k in ("source_only", "adabn", "self_training", "bcl", "dacs", "cluda", "ucda", "clst", "sdca", "oracle"):
            assert sorted(m["seed"] for m in b[d][k]) == [0, 1, 2], (d, k)
