"""Benchmarks are not tests: this only checks that scripts/bench-ddp, bench-ckpt and
bench-allreduce run from a checkout and print their last line (the smallest settings); no figure
is asserted."""
import os
import re
import subprocess

import pytest

from conftest import ROOT, TRAINER

# Full only (scripts/test --full): smoke runs of the benchmark scripts, about a minute.
pytestmark = pytest.mark.full


def test_bench_ddp_runs_and_prints_its_last_line():
    p = subprocess.run([str(ROOT / "scripts" / "bench-ddp"), "--steps", "3", "--warmup", "1", "--runs", "1"],
                       cwd=ROOT, env=dict(os.environ, TRAINER=TRAINER), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:]
    last = p.stdout.strip().splitlines()[-1]
    assert re.match(r"bench-ddp: C\+\+/Python = \d+\.\d\d \(C\+\+ [\d.]+ samples/s, Python [\d.]+ samples/s, settings: ",
                    last), last


def test_bench_ckpt_runs_and_prints_its_last_line(tmp_path):
    p = subprocess.run([str(ROOT / "scripts" / "bench-ckpt"), "--configs", "tiny"], cwd=ROOT,
                       env=dict(os.environ, TRAINER=TRAINER, BENCH_DIR=str(tmp_path)), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:]
    last = p.stdout.strip().splitlines()[-1]
    assert re.match(r"bench-ckpt: async stall/sync = \d+\.\d+, write/dd = \d+\.\d+, overhead at 1 save/min = "
                    r"\d+\.\d+% \(tiny, ", last), last
    assert not any(tmp_path.iterdir()), "the bench leaves nothing behind"


def test_bench_allreduce_runs_and_prints(tmp_path):
    p = subprocess.run([str(ROOT / "scripts" / "bench-allreduce")], cwd=ROOT, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:]
    assert re.search(r"bench-allreduce: gloo, 2 ranks, 400 MB: [\d.]+ ms, bus bandwidth [\d.]+ GB/s", p.stdout), p.stdout
