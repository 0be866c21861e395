"""A lost rank costs no work: when one rank dies without warning (kill -9, as the OOM killer or a
node losing power would), the survivors still hold the whole state of the last step they completed
(data parallelism replicates it, and every rank's random streams follow from the seed, the step and
the rank), so one of them saves it, and every survivor exits 76 for its launcher to restart.

The proof is the one every resume test gives: the run resumed from the survivors' checkpoint ends
with the very weights, optimizer moments, histories and data position of a run never interrupted."""
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (TINY, TRAINER, VENV_BIN, assert_same_training, launch_ranks, load, rank_pids, run, start,
                      wait_for_line)

CK = "checkpoints"
PEER_LOST = 76
# No periodic saves: whatever the survivors save is all there is to resume from.
COMMON = ["--max-steps", 60, "--save-every-steps", 0, "--save-every-minutes", 0, "--timeout-seconds", 20]


def kill_rank(run_dir, rank, world=3):
    deadline = time.time() + 30
    while time.time() < deadline:
        pids = rank_pids(run_dir)
        if len(pids) == world:
            os.kill(pids[rank], signal.SIGKILL)
            return
        time.sleep(0.1)
    raise AssertionError(f"ranks of {run_dir} not found: {rank_pids(run_dir)}")


def survivors_steps(log):
    """The step each survivor said its state was at."""
    return [int(s) for s in re.findall(r"this rank's state is step (\d+), whole", log)]


def ckpt_info(path):
    return subprocess.run([TRAINER, "ckpt", "info", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True).stdout


@pytest.fixture(scope="module")
def reference_3(tmp_path_factory):
    """Three ranks, never interrupted, to step 60."""
    d = tmp_path_factory.mktemp("reference3")
    run(["--run-dir", d] + COMMON, launcher="mpirun", np=3)
    return load(d / CK / "last.pt")


# Full only: a kill from outside at whatever instant it lands, of rank 0 and of rank 1. The fast
# case below loses rank 0 at a chosen point instead (the survivors take its lock over), and the
# hole-5 test in test_faults kills rank 2 (rank 0 saves).
@pytest.mark.full
@pytest.mark.parametrize("victim", [0, 1])
def test_a_rank_killed_under_mpirun_costs_no_work(tmp_path, reference_3, victim):
    p = start(["--run-dir", tmp_path] + COMMON, launcher="mpirun", np=3)
    log = wait_for_line(p, "step 20/")
    kill_rank(tmp_path, victim)
    out, _ = p.communicate(timeout=120)
    log += out
    assert p.returncode != 0, log[-3000:]
    saved = re.search(r"the survivors saved step (\d+)", log)
    assert saved, log[-3000:]
    step = int(saved.group(1))
    steps = survivors_steps(log)
    # The last completed step: every survivor was there (or one behind, in a race of microseconds).
    assert len(steps) == 2 and step >= 20 and max(steps) == step, log[-3000:]
    last = tmp_path / CK / "last.pt"
    assert load(last)["train_state"]["global_step"] == step
    info = ckpt_info(last)
    # Rank 0 alive writes (it holds the lock); rank 0 dead, whichever survivor takes the lock first.
    writer = re.search(r"\(written by rank (\d)\)", info)
    assert "by the survivors of a lost rank" in info and writer, info
    assert int(writer.group(1)) == 0 if victim != 0 else int(writer.group(1)) in (1, 2), info
    # Resumed at the same world size: the training of a run never interrupted.
    code, out = run(["--run-dir", tmp_path] + COMMON, launcher="mpirun", np=3)
    assert "resumed from" in out
    assert_same_training(reference_3, load(last), f"rank {victim} killed at step {step}")


def test_survivors_agree_on_the_step_their_state_is_at(tmp_path, reference_3):
    """Rank 0 dies after the step's gradient allreduce, just before its flag allreduce: its peers
    hold averaged gradients but have not stepped (the optimizer steps only once the flags agree),
    so both say step 20; one of them takes the dead rank 0's lock and writes step 20, whole (ckpt
    verify), which resumes exactly."""
    code, out = run(["--run-dir", tmp_path] + COMMON, launcher="mpirun", np=3,
                    env={"RESUMABLE_TEST_DIE_AT": "21:0"}, check=False)
    assert code != 0
    assert survivors_steps(out) == [20, 20], out[-3000:]
    last = tmp_path / CK / "last.pt"
    assert load(last)["train_state"]["global_step"] == 20
    assert re.search(r"\(written by rank [12]\)", ckpt_info(last)), ckpt_info(last)
    v = subprocess.run([TRAINER, "ckpt", "verify", str(last)], stdout=subprocess.PIPE, text=True)
    assert v.returncode == 0 and v.stdout.startswith("OK"), v.stdout
    run(["--run-dir", tmp_path] + COMMON, launcher="mpirun", np=3)
    assert_same_training(reference_3, load(last), "rank 0 lost before the flags of step 21")


@pytest.mark.full  # torchrun's path: the agent stops the survivors (SIGTERM), then restarts all
def test_a_rank_killed_under_torchrun_restarts_from_the_survivors_save(tmp_path, reference_3):
    p = subprocess.Popen([str(VENV_BIN / "torchrun"), "--nproc-per-node", "3", "--max-restarts", "1", "--no-python",
                          TRAINER, "--config", TINY, "--run-dir", str(tmp_path)] + [str(a) for a in COMMON],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                         stdin=subprocess.DEVNULL)
    log = wait_for_line(p, "step 20/")
    kill_rank(tmp_path, 1)
    out, _ = p.communicate(timeout=240)
    log += out
    assert p.returncode == 0, log[-3000:]
    assert re.search(r"the survivors saved step \d+", log) and "resumed from" in log, log[-3000:]
    assert_same_training(reference_3, load(tmp_path / CK / "last.pt"), "rank 1 killed under torchrun")


@pytest.mark.full  # the refusal: nobody can become the writer, so nobody writes
def test_survivors_that_cannot_take_the_lock_write_nothing(tmp_path):
    """Rank 0 frozen (SIGSTOP), not dead: it still holds the run directory's lock and its state.
    Ranks 1 and 2 time out, cannot take the lock, write nothing and exit 76; the last good
    checkpoint stays as it was, byte for byte. No launcher: mpirun would wake rank 0 to kill it."""
    procs = launch_ranks(tmp_path, 29000 + random.randrange(1000), ["--save-every-steps", 15, "--timeout-seconds", 6],
                         world=3)
    try:
        wait_for_line(procs[0], "step 20/")
        last = tmp_path / CK / "last.pt"
        before = (last.read_bytes(), last.stat().st_mtime_ns)
        procs[0].send_signal(signal.SIGSTOP)
        for r in (1, 2):
            out, _ = procs[r].communicate(timeout=60)
            assert procs[r].returncode == PEER_LOST, out[-3000:]
            assert "not saving: the run directory's lock is held" in out, out[-3000:]
        assert (last.read_bytes(), last.stat().st_mtime_ns) == before
    finally:
        for p in procs:
            p.kill()
            p.wait()
