"""Benchmarks are not tests: this only checks that scripts/bench-ddp runs from a checkout and prints
its last line (a few steps, one run each side); no figure is asserted."""
import os
import re
import subprocess

from conftest import ROOT, TRAINER


def test_bench_ddp_runs_and_prints_its_last_line():
    p = subprocess.run([str(ROOT / "scripts" / "bench-ddp"), "--steps", "3", "--warmup", "1", "--runs", "1"],
                       cwd=ROOT, env=dict(os.environ, TRAINER=TRAINER), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:]
    last = p.stdout.strip().splitlines()[-1]
    assert re.match(r"bench-ddp: C\+\+/Python = \d+\.\d\d \(C\+\+ [\d.]+ samples/s, Python [\d.]+ samples/s, settings: ",
                    last), last
