"""Issue 42, item 5: `trainer --dry-run` shows what a start would do (config, resume plan, schedule,
deadline) and changes nothing on disk; `--print-config` prints the config the run will really use."""
import hashlib
import json
import os
import re
import select
import shutil
import subprocess
import time

import pytest

from conftest import MPIRUN, TINY, TRAINER, VENV_BIN, run, start, wait_for_line


def snapshot(root):
    """Every file's size, mtime and content hash, and every directory's mtime (an entry created and
    removed again moves it), by path under `root`."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(root):
        seen[os.path.relpath(dirpath, root)] = ("dir", os.stat(dirpath).st_mtime_ns)
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            seen[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns, digest)
    return seen


def trainer(args, launcher="single", check=True, timeout=120):
    """The trainer without tiny.json's --config (the dry run reads the saved one): (code, stdout, stderr)."""
    argv = [TRAINER] + [str(a) for a in args]
    if launcher == "mpirun":
        argv = MPIRUN + ["-np", "2"] + argv
    elif launcher == "torchrun":
        argv = [str(VENV_BIN / "torchrun"), "--nproc-per-node", "2", "--no-python"] + argv
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check:
        assert p.returncode == 0, f"exit {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """tiny, stopped by --max-steps at step 12 (the run a requeue would resume)."""
    d = tmp_path_factory.mktemp("stopped") / "run"
    run(["--run-dir", d, "--max-steps", 12])
    return d


def test_a_dry_run_on_a_stopped_run_shows_the_resume_and_changes_nothing(stopped_run):
    before = snapshot(stopped_run)
    assert ".lock" in before
    _, out, _ = trainer(["--run-dir", stopped_run, "--dry-run", "--max-steps", 30])
    assert snapshot(stopped_run) == before
    assert f"resume    from {stopped_run}/checkpoints/last.pt" in out and "epoch 0, step 12" in out, out
    assert (f"config    the one saved in {stopped_run}/checkpoints/last.pt, then the command line: --run-dir "
            f"{stopped_run} --max-steps 30") in out
    assert "d_model 64" in out and "epochs 2" in out, out
    assert re.search(r"position  epoch 0, sample 768 of \d+ consumed; the next step is 13", out), out
    assert "ranks     1, as when saved" in out
    assert "lock is free" in out
    assert re.search(r"schedule  \d+ steps \(\d+ per epoch x 2 epochs, global batch 64\), warmup 20 steps", out), out
    assert "stop      at step 30 (--max-steps" in out
    assert "deadline  none" in out
    assert out.rstrip().endswith("dry run: a start would resume from step 12 and train to step 30"), out
    assert "refused" not in out


@pytest.mark.parametrize("launcher", ["mpirun", "torchrun"])
def test_a_dry_run_under_a_launcher_prints_once_and_every_rank_exits_0(stopped_run, launcher):
    before = snapshot(stopped_run)
    _, out, _ = trainer(["--run-dir", stopped_run, "--dry-run"], launcher=launcher)
    assert snapshot(stopped_run) == before
    assert out.count("trainer --dry-run:") == 1, out
    assert f"launch    {launcher}, 2 ranks, 2 on this node" in out and "ranks     2 now, 1 when saved" in out, out
    assert "a start would resume from step 12 and train to step" in out


def test_a_dry_run_says_what_a_start_would_refuse(stopped_run, tmp_path):
    before = snapshot(stopped_run)
    # Another global batch: refused at planning, exit 2.
    _, out, _ = trainer(["--run-dir", stopped_run, "--dry-run", "--batch-size", 32])
    assert "refused   a start would stop here, exit 2: batch_size: saved 64" in out, out
    assert out.rstrip().endswith("dry run: a start would be refused (exit 2)")
    # Another architecture: refused, exit 1.
    _, out, _ = trainer(["--run-dir", stopped_run, "--dry-run", "--d-model", 128])
    assert "refused   a start would stop here, exit 1:" in out
    assert "does not fit this config (d_model: saved 64, given 128)" in out
    # --resume never without --force: refused; with it, the checkpoints would be moved aside (and are not).
    _, out, _ = trainer(["--run-dir", stopped_run, "--dry-run", "--resume", "never"])
    assert "exit 2: " in out and "already holds checkpoints" in out
    _, out, _ = trainer(["--run-dir", stopped_run, "--dry-run", "--resume", "never", "--force"])
    assert f"the checkpoints there would be moved aside to {stopped_run}/checkpoints.old-" in out, out
    assert "a start would start a new run and train to step" in out
    assert snapshot(stopped_run) == before
    # The real start refuses what the dry run said it would, with the same exit code and message.
    copy = tmp_path / "copy"
    shutil.copytree(stopped_run, copy)
    code, out = run(["--run-dir", copy, "--batch-size", 32, "--max-steps", 14], check=False)
    assert code == 2 and "batch_size: saved 64" in out, out[-2000:]


def test_a_dry_run_at_a_terminal_asks_nothing(stopped_run):
    # A start at a terminal asks before it resumes; the dry run says so and goes on.
    import pty
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    p = subprocess.Popen([TRAINER, "--run-dir", str(stopped_run), "--dry-run"], stdin=follower, stdout=follower,
                         stderr=follower, env=env, close_fds=True)
    os.close(follower)
    seen, deadline = b"", time.time() + 60
    while time.time() < deadline:
        if select.select([leader], [], [], 1)[0]:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    if p.poll() is None:
        p.kill()
    os.close(leader)
    out = seen.decode(errors="replace")
    assert p.wait() == 0, f"the dry run waited at the terminal:\n{out}"
    assert "on a terminal a start asks first" in out, out


def test_a_dry_run_names_the_holder_of_a_busy_run_directory(tmp_path):
    job = start(["--run-dir", tmp_path, "--epochs", 50, "--save-every-steps", 5])
    try:
        wait_for_line(job, "saved")
        lock = tmp_path / ".lock"
        held = (lock.read_bytes(), lock.stat().st_mtime_ns)
        _, out, _ = trainer(["--run-dir", tmp_path, "--dry-run"])
        assert f"its lock is held by pid {job.pid} on host" in out, out
        busy = rf"exit 69: {re.escape(str(tmp_path))} is in use by another job \(pid {job.pid} on host"
        assert re.search(busy, out), out
        assert (lock.read_bytes(), lock.stat().st_mtime_ns) == held
        assert job.poll() is None, "the running job was disturbed"
    finally:
        job.kill()
        job.communicate()


def test_a_dry_run_on_a_new_directory_creates_nothing(tmp_path):
    target = tmp_path / "runs" / "new"
    _, out, _ = trainer(["--config", TINY, "--run-dir", target, "--dry-run"])
    assert list(tmp_path.iterdir()) == []
    assert f"run dir   {target}: does not exist yet" in out
    assert "start     a new run" in out and "a start would start a new run and train to step" in out
    # The schedule it names is the one the real start logs.
    planned = re.search(r"schedule  (\d+) steps \((\d+) per epoch x 2 epochs", out)
    _, log = run(["--run-dir", target, "--max-steps", 2])
    assert f"schedule: {planned[1]} steps ({planned[2]} per epoch x 2 epochs" in log, log[-3000:]


def test_a_dry_run_shows_the_re_planned_schedule_the_resume_logs(stopped_run, tmp_path):
    _, out, _ = trainer(["--run-dir", stopped_run, "--dry-run", "--epochs", 3, "--lr", "0.001"])
    replan = re.search(r"LR schedule re-planned: end step \d+ -> \d+, cosine from lr \S+ at step 12", out)
    assert replan and "epochs 2 -> 3" in out and "lr 0.002 -> 0.001" in out, out
    copy = tmp_path / "copy"
    shutil.copytree(stopped_run, copy)
    _, log = run(["--run-dir", copy, "--epochs", 3, "--lr", "0.001", "--max-steps", 13])
    assert replan[0] in log, log[-3000:]


def test_print_config_on_a_resumed_directory_prints_the_saved_config(stopped_run):
    before = snapshot(stopped_run)
    _, out, err = trainer(["--run-dir", stopped_run, "--print-config"])
    cfg = json.loads(out)  # stdout is the JSON alone
    assert cfg["d_model"] == 64 and cfg["epochs"] == 2 and cfg["batch_size"] == 64, cfg  # tiny.json's, not the defaults
    assert err == ""
    _, out, _ = trainer(["--run-dir", stopped_run, "--print-config", "--epochs", 3])
    cfg = json.loads(out)
    assert cfg["epochs"] == 3 and cfg["d_model"] == 64
    assert snapshot(stopped_run) == before
