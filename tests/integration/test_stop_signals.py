"""Issue 12, items 3-4: a stop signal is honoured in every phase of a run, within a bounded time,
and a signal ignored by whoever started the trainer (nohup) stays ignored."""
import os
import random
import signal
import subprocess
import time

import pytest

from conftest import assert_same_training, command, load, run, start, wait_for_line

# Long validations (the whole validation split, beam search): the phase a stop used to wait out.
SLOW_EVAL = ["--max-eval-words", 0, "--eval-batch-size", 64, "--beam-size", 4]


def test_nohup_keeps_sighup_ignored(tmp_path):
    p = subprocess.Popen(["nohup"] + command(["--run-dir", tmp_path, "--epochs", 50, "--log-every-steps", 1]),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    wait_for_line(p, "step 5/")
    p.send_signal(signal.SIGHUP)  # a closed terminal: nohup asked for it to be ignored
    out = wait_for_line(p, "step 40/")
    p.send_signal(signal.SIGTERM)
    rest, _ = p.communicate(timeout=120)
    out += rest
    assert p.returncode == 75, out[-2000:]
    assert "stopped by SIGHUP" not in out and "stopped by SIGTERM" in out


# Full only (3 to 4 minutes: two runs validating the whole split with beam 4): a stop in the middle of a
# validation, and the resume that runs it again exactly; the other phases are kept.
@pytest.mark.full
def test_stop_during_validation_saves_the_last_step_and_the_resume_is_exact(tmp_path):
    reference = tmp_path / "reference"
    run(["--run-dir", reference] + SLOW_EVAL, launcher="mpirun")
    d = tmp_path / "interrupted"
    p = start(["--run-dir", d] + SLOW_EVAL, launcher="mpirun")
    wait_for_line(p, "validating after epoch 1 at step 67")
    time.sleep(1.0)
    t0 = time.time()
    p.send_signal(signal.SIGUSR1)  # mpirun forwards it to both ranks
    out = wait_for_line(p, "stopped by SIGUSR1 during validation at step 67")
    elapsed = time.time() - t0
    rest, _ = p.communicate(timeout=120)
    out += rest
    assert p.returncode == 75, out[-3000:]
    # The validation of the whole split takes well over ten seconds; the stop waits for one batch.
    assert elapsed < 8, f"the stop took {elapsed:.1f}s"
    ck = load(d / "checkpoints" / "last.pt")
    assert ck["train_state"]["global_step"] == 67 and ck["train_state"]["eval_pending"] is True
    assert len(ck["history"]["val_loss"]) == 0
    code, out = run(["--run-dir", d] + SLOW_EVAL, launcher="mpirun")
    assert "running the validation after epoch 1 that a stop interrupted" in out
    final = load(d / "checkpoints" / "last.pt")
    assert_same_training(load(reference / "checkpoints" / "last.pt"), final, "stop during validation")
    assert load(d / "checkpoints" / "best.pt")["train_state"]["global_step"] == final["train_state"]["best_step"]
    print(f"stop during validation: exit 75 after {elapsed:.1f}s")


def test_stop_during_rendezvous_exits_at_once(tmp_path):
    # Rank 0 of two, whose peer never comes: it waits in the rendezvous (up to --timeout-seconds).
    env = dict(os.environ, RANK="0", WORLD_SIZE="2", LOCAL_RANK="0", LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(29000 + random.randrange(1000)))
    p = subprocess.Popen(command(["--run-dir", tmp_path, "--timeout-seconds", 300]), env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    time.sleep(3)
    assert p.poll() is None
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 75, out
    assert time.time() - t0 < 5
    assert "stopped by SIGTERM before training started" in out


def test_stop_during_eval_exits_at_once(tmp_path):
    run(["--run-dir", tmp_path, "--max-steps", 3])
    p = start(["--run-dir", tmp_path, "--eval"] + SLOW_EVAL)
    wait_for_line(p, "joined")
    time.sleep(3)
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 75, out[-2000:]
    assert time.time() - t0 < 8
    assert "stopped by SIGTERM" in out and '"test"' not in out
