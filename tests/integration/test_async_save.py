"""Issue 14: saves in the background (--async-save, on by default). The training thread takes a
snapshot; rank 0 writes it on another thread with the same protocol, one write at a time; what
it writes equals a synchronous save, and its outcome reaches every rank at the next step."""
import re
import shutil
import subprocess
import zipfile

import torch

from conftest import assert_same_training, load, run, start, wait_for_line

CK = "checkpoints"
SLOW = {"RESUMABLE_TEST_WRITE_DELAY_MS": "20"}  # 20 ms per 64 KiB: about 1 s for tiny's 3 MB


def saved_steps(out):
    return [int(m) for m in re.findall(r"info: saved \S+ \([^)]*\): step (\d+)", out)]


def assert_equal_values(a, b, where):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_equal_values(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal_values(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def tensor_records(path):
    with zipfile.ZipFile(path) as z:
        return {n.split("/", 1)[1]: z.read(n) for n in z.namelist() if "/data/" in n}


def test_a_background_save_writes_what_a_synchronous_save_writes(tmp_path):
    # The synchronous run keeps a snapshot of every step; the background run saves every 4 steps
    # (or a step or two later, when the write before is still going), and each of its files must
    # equal the synchronous one of its step.
    run(["--run-dir", tmp_path / "sync", "--async-save", "false", "--save-every-steps", 1, "--keep-last", 100,
         "--max-steps", 12], launcher="mpirun")
    code, out = run(["--run-dir", tmp_path / "async", "--save-every-steps", 4, "--keep-last", 100, "--max-steps", 12],
                    launcher="mpirun")
    steps = saved_steps(out)
    # All but the last in the background; the last (max_steps) before the exit, as always.
    background = out.count("written in the background, training paused")
    assert background >= 1 and background == len(steps) - 1 and steps[0] == 4 and steps[-1] == 12, out[-3000:]
    for step in steps:
        name = f"step-{step:08d}.pt"
        a, b = load(tmp_path / "sync" / CK / name), load(tmp_path / "async" / CK / name)
        assert a["config"].pop("async_save") is False and b["config"].pop("async_save") is True
        for d in (a, b):
            for key in ("run_dir", "save_every_steps"):
                d["config"].pop(key)
        assert_equal_values(a, b, name)  # every component, every value, every tensor
        sync_records, async_records = tensor_records(tmp_path / "sync" / CK / name), tensor_records(tmp_path / "async" / CK / name)
        assert sync_records == async_records, f"{name}: tensor records differ byte for byte"


def test_a_save_due_while_one_is_written_is_deferred_not_queued(tmp_path):
    # A save is due after every step, each write takes about a second, a step a few ms. Never
    # deferred: the new best at step 67 (end of epoch 1), and the snapshots --keep-every-steps keeps
    # (they must carry their step's name); those wait for the write in flight, then go.
    code, out = run(["--run-dir", tmp_path, "--save-every-steps", 1, "--keep-every-steps", 25, "--max-steps", 70],
                    launcher="mpirun", env=SLOW)
    steps = saved_steps(out)
    assert steps == sorted(set(steps)) and steps[0] == 1 and steps[-1] == 70, steps
    assert {25, 50, 67} <= set(steps) and len(steps) < 20, f"saves were queued, not deferred: {steps}"
    assert (tmp_path / CK / "step-00000025.pt").exists() and (tmp_path / CK / "step-00000050.pt").exists()
    best, last = load(tmp_path / CK / "best.pt"), load(tmp_path / CK / "last.pt")
    assert best["train_state"]["global_step"] == 67 == last["train_state"]["best_step"]
    assert last["train_state"]["global_step"] == 70


def test_a_background_write_that_fails_reaches_every_rank_at_the_next_step(tmp_path):
    # Step 10 is the first save of the resumed launch, so nothing is in flight to defer it.
    run(["--run-dir", tmp_path / "a", "--max-steps", 5], launcher="mpirun")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    args = ["--save-every-steps", 5, "--max-steps", 20]
    fail_10 = {"RESUMABLE_TEST_FAIL_SAVE": "10:io"}
    code, out = run(["--run-dir", tmp_path / "a", "--max-failed-saves", 1] + args, launcher="mpirun", env=fail_10,
                    check=False)
    assert code == 74, out[-3000:]
    assert "checkpoint not saved (periodic): injected write failure at step 10" in out
    assert "[step 10, written in the background]" in out
    assert "rank 0 could not write the checkpoint it saved in the background" in out  # said by rank 1
    assert out.count("stopping: 1 failed save(s) in a row") == 2  # both ranks, at the same step
    assert load(tmp_path / "a" / CK / "last.pt")["train_state"]["global_step"] == 5
    # Under the default limit the run goes on, and the next save puts last.pt right again.
    code, out = run(["--run-dir", tmp_path / "b"] + args, launcher="mpirun", env=fail_10)
    steps = saved_steps(out)
    assert "injected write failure at step 10" in out and 10 not in steps and steps[-1] == 20, steps
    assert load(tmp_path / "b" / CK / "last.pt")["train_state"]["global_step"] == 20


def test_a_stop_signal_waits_for_the_background_write(tmp_path):
    # The stop arrives while step 10's write is in flight: the stop save waits for it, then runs.
    # (mpirun forwards SIGUSR1 as it is; SIGTERM it answers with its own exit code.)
    p = start(["--run-dir", tmp_path, "--save-every-steps", 10, "--log-every-steps", 10, "--epochs", 20],
              launcher="mpirun", env=SLOW)
    wait_for_line(p, "step 10/")
    p.send_signal(subprocess.signal.SIGUSR1)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 75, out[-3000:]
    steps = saved_steps(out)
    assert steps[0] == 10 and len(steps) == 2 and steps[1] > 10, steps
    assert load(tmp_path / CK / "last.pt")["train_state"]["global_step"] == steps[1]


def test_a_failed_background_copy_never_becomes_a_saved_state(tmp_path):
    # Step 67 (end of epoch 1) is a new best, saved in the background; the writer thread's copy of
    # its state fails. Its weights must not be taken later, after the optimizer changed them, and
    # saved under step 67's name: the training thread copies them before its next optimizer step,
    # and the next save (75: periodic ones back off after a failure) publishes that copy as
    # best.pt. The reference: step 67 saved at once.
    run(["--run-dir", tmp_path / "ref", "--async-save", "false", "--max-steps", 67])
    code, out = run(["--run-dir", tmp_path / "run", "--save-every-steps", 10, "--max-steps", 75],
                    env={"RESUMABLE_TEST_FAIL_SAVE": "67:copy"})
    assert "injected fault while copying the snapshot" in out, out[-3000:]
    assert "the background copy of the new best failed" in out and "best.pt follows with the next save" in out
    best, last = load(tmp_path / "run" / CK / "best.pt"), load(tmp_path / "run" / CK / "last.pt")
    assert last["train_state"]["global_step"] == 75 and last["train_state"]["best_step"] == 67
    assert best["train_state"]["global_step"] == 67
    assert_same_training(load(tmp_path / "ref" / CK / "best.pt"), best, "best.pt of step 67")


def test_the_background_write_ends_before_the_lock_is_released(tmp_path):
    # A resume whose proof fails at its second batch, while step 21's save is being written in the
    # background (about a second): the run stops (exit 1), but only after the write has ended and
    # been reported; the lock is released after it, and last.pt holds step 21.
    run(["--run-dir", tmp_path, "--max-steps", 20])
    code, out = run(["--run-dir", tmp_path, "--save-every-steps", 1, "--max-steps", 40],
                    env={**SLOW, "RESUMABLE_TEST_PROOF_FAIL_AT": "2"}, check=False)
    assert code == 1 and "resume proof failed: batch 2 differs (injected)" in out, out[-3000:]
    assert out.index("resume proof failed") < out.index("info: saved ") and saved_steps(out) == [21], out[-3000:]
    assert load(tmp_path / CK / "last.pt")["train_state"]["global_step"] == 21
