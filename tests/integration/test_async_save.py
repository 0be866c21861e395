"""Issue 14: saves in the background (--async-save, on by default). The training thread takes a
snapshot; rank 0 writes it on another thread with the same protocol, one write at a time; what
it writes equals a synchronous save, and its outcome reaches every rank at the next step."""
import re
import subprocess
import zipfile

import torch

from conftest import load, run, start, wait_for_line

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
    args = ["--save-every-steps", 4, "--max-steps", 12]
    run(["--run-dir", tmp_path / "sync", "--async-save", "false"] + args, launcher="mpirun")
    code, out = run(["--run-dir", tmp_path / "async"] + args, launcher="mpirun")
    # Steps 4 and 8 in the background; the last save (max_steps) before the exit, as always.
    assert out.count("written in the background, training paused") == 2, out[-3000:]
    assert saved_steps(out) == [4, 8, 12]
    for name in ("step-00000004.pt", "step-00000008.pt", "last.pt"):
        a, b = load(tmp_path / "sync" / CK / name), load(tmp_path / "async" / CK / name)
        assert a["config"].pop("async_save") is False and b["config"].pop("async_save") is True
        a["config"].pop("run_dir"), b["config"].pop("run_dir")
        assert_equal_values(a, b, name)  # every component, every value, every tensor
        sync_records, async_records = tensor_records(tmp_path / "sync" / CK / name), tensor_records(tmp_path / "async" / CK / name)
        assert sync_records == async_records, f"{name}: tensor records differ byte for byte"


def test_a_save_due_while_one_is_written_is_deferred_not_queued(tmp_path):
    # A save is due after every step, each write takes about a second, a step a few ms; the new
    # best at step 67 (end of epoch 1) is never deferred: it waits for the write, then goes.
    code, out = run(["--run-dir", tmp_path, "--save-every-steps", 1, "--max-steps", 70], launcher="mpirun",
                    env=SLOW)
    steps = saved_steps(out)
    assert steps == sorted(set(steps)) and steps[0] == 1 and steps[-1] == 70, steps
    assert 67 in steps and len(steps) < 20, f"saves were queued, not deferred: {steps}"
    best, last = load(tmp_path / CK / "best.pt"), load(tmp_path / CK / "last.pt")
    assert best["train_state"]["global_step"] == 67 == last["train_state"]["best_step"]
    assert last["train_state"]["global_step"] == 70


def test_a_background_write_that_fails_reaches_every_rank_at_the_next_step(tmp_path):
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
    assert saved_steps(out) == [5, 15, 20]
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
