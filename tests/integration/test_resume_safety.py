"""Issue 12, items 10-16: a resume never picks the wrong file, never rewinds progress, never lets two
jobs share a run directory, and refuses what it cannot trust; the run directory itself is durable."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ckpt_tools import save_with_checksum
from conftest import command, hold_run_directory_lock, load, run, start, wait_for_line

CK = "checkpoints"


def step_of(path):
    return load(path)["train_state"]["global_step"]


# --- 10: one job per run directory ---------------------------------------------------------------

def test_a_second_job_on_a_busy_run_directory_is_refused(tmp_path):
    a = start(["--run-dir", tmp_path, "--epochs", 50, "--save-every-steps", 10])
    wait_for_line(a, "saved")
    for extra in ([], ["--resume", "never", "--force"]):
        t0 = time.time()
        code, out = run(["--run-dir", tmp_path, "--max-steps", 2] + extra, check=False, timeout=60)
        assert code == 69, out[-2000:]
        assert time.time() - t0 < 20
        assert re.search(rf"{tmp_path} is in use by another job \(pid {a.pid} on host \S+ since \d{{4}}-", out), out
    assert not list(tmp_path.glob("checkpoints.old-*")), "--force moved the running job's checkpoints aside"
    assert a.poll() is None, "the first job was disturbed"
    # A job killed outright leaves its lock to be taken over.
    a.send_signal(signal.SIGKILL)
    a.communicate()
    code, out = run(["--run-dir", tmp_path, "--max-steps", 2, "--epochs", 50], check=False)
    assert f"took over the run directory's lock left by pid {a.pid}" in out, out[-2000:]
    assert code == 0 and "resumed from" in out
    # An orderly end leaves nothing to take over.
    code, out = run(["--run-dir", tmp_path, "--max-steps", 2, "--epochs", 50])
    assert "took over" not in out


def test_every_rank_of_a_job_refused_a_busy_run_directory_exits_69(tmp_path):
    """Issue 41, hole 7: a lock held by a live training job is exit 69 (retry later, which the launch
    scripts do), not 2 (bad input), on every rank and in rank 0's exit file; nothing waits for it."""
    holder = hold_run_directory_lock(tmp_path, 120)
    exit_file = tmp_path / "exit-code"
    try:
        t0 = time.time()
        code, out = run(["--run-dir", tmp_path, "--max-steps", 2], launcher="mpirun", check=False, timeout=120,
                        env={"RESUMABLE_EXIT_FILE": str(exit_file)})
        elapsed = time.time() - t0
    finally:
        holder.kill()
        holder.wait()
    assert code == 69, out[-2000:]
    assert exit_file.read_text().strip() == "69"
    for r in (0, 1):
        assert re.search(rf"\[rank {r}/2\] error: {tmp_path} is in use by another job \(pid {holder.pid} on host ", out), out
    assert "waiting" not in out
    assert elapsed < 30, f"took {elapsed:.0f}s"


def test_a_job_waits_for_a_tool_holding_the_run_directory(tmp_path):
    """Issue 41, hole 7: `trainer ckpt clean` holds the run directory's lock for the seconds its
    deletions take. A job starting meanwhile says once that it waits and for whom, and trains as
    soon as the tool lets go; its other rank waits as long (past the collective timeout, 3 s here)."""
    run(["--run-dir", tmp_path, "--max-steps", 3])
    hold_s = 6
    holder = hold_run_directory_lock(tmp_path, hold_s, tool="ckpt clean")
    t0 = time.time()
    code, out = run(["--run-dir", tmp_path, "--max-steps", 6, "--timeout-s", 3], launcher="mpirun", check=False,
                    timeout=120)
    elapsed = time.time() - t0
    holder.wait()
    assert code == 0, out[-3000:]
    assert out.count("is locked by `trainer ckpt clean`, pid") == 1, out[-3000:]
    assert re.search(rf"{tmp_path} is locked by `trainer ckpt clean`, pid {holder.pid} on host \S+ since [-0-9: ]+: "
                     r"waiting up to 60 s for it to finish", out), out[-3000:]
    assert "the tool let go; took the lock after" in out and "took over" not in out
    assert "resumed from" in out and step_of(tmp_path / CK / "last.pt") == 6
    assert elapsed >= hold_s - 1, f"trained after {elapsed:.1f}s while the tool held the lock for {hold_s}s"


# --- 11: --resume PATH under restarts -----------------------------------------------------------

def test_resume_path_is_not_applied_again_on_a_restart(tmp_path):
    d = tmp_path / "run"
    run(["--run-dir", d, "--save-every-steps", 10, "--max-steps", 30, "--async-save", "false"])  # snapshots at exact steps
    rollback = d / CK / "step-00000010.pt"
    flags = ["--run-dir", d, "--resume", rollback, "--save-every-steps", 5, "--keep-last", 2]
    code, out = run(flags + ["--max-steps", 25])
    assert step_of(d / CK / "last.pt") == 25
    assert not rollback.exists(), "retention was expected to prune the rollback point (the harder case)"
    # The same command again, as a restart wrapper, a requeue or torchrun --max-restarts runs it.
    code, out = run(flags + ["--max-steps", 40])
    assert "this run already went on from it; continuing from" in out, out[-2000:]
    last = load(d / CK / "last.pt")
    assert last["train_state"]["global_step"] == 40
    assert last["history"]["resumed_at_step"].tolist() == [10, 25]


@pytest.mark.full  # --resume PATH from another run's directory; the same-directory restart is kept
def test_resume_path_of_another_run_continues_this_runs_progress(tmp_path):
    run(["--run-dir", tmp_path / "a", "--max-steps", 10])
    source = tmp_path / "a" / CK / "last.pt"
    flags = ["--run-dir", tmp_path / "b", "--resume", source]
    run(flags + ["--max-steps", 20])
    code, out = run(flags + ["--max-steps", 30])
    assert "continuing from" in out
    assert load(tmp_path / "b" / CK / "last.pt")["history"]["resumed_at_step"].tolist() == [10, 20]
    assert step_of(source) == 10


# --- 12: fall back only past damage ---------------------------------------------------------------

def test_a_newer_format_stops_the_run_and_touches_nothing(tmp_path):
    run(["--run-dir", tmp_path, "--save-every-steps", 5, "--max-steps", 10])
    last = tmp_path / CK / "last.pt"
    c = load(last)
    c["format_version"] = 99
    last.unlink()
    save_with_checksum(c, last)  # a newer trainer's file: valid, just not for us
    before = {p.name: p.read_bytes() for p in (tmp_path / CK).iterdir()}
    code, out = run(["--run-dir", tmp_path, "--max-steps", 15], check=False)
    assert code == 1 and "format version 99 is newer than this trainer reads" in out, out[-2000:]
    assert "falling back" not in out
    assert {p.name: p.read_bytes() for p in (tmp_path / CK).iterdir()} == before


@pytest.fixture
def nobody_dir():
    """A run directory an unprivileged user owns (pytest's own temporary folders are root's alone)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to run the trainer as an unprivileged user")
    d = Path(tempfile.mkdtemp(prefix="resumable-nobody-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_an_unreadable_file_stops_the_run_and_touches_nothing(nobody_dir):
    d = nobody_dir
    run(["--run-dir", d, "--save-every-steps", 5, "--max-steps", 10])
    subprocess.run(["chown", "-R", "65534:65534", str(d)], check=True)
    os.chmod(d / CK / "last.pt", 0)  # EACCES for anyone but root
    before = sorted(p.name for p in (d / CK).iterdir())
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
                       + command(["--run-dir", d, "--max-steps", 15]), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p.stdout[-2000:]
    assert "Permission denied (a file system error, not damage" in p.stdout
    assert "falling back" not in p.stdout
    assert sorted(p.name for p in (d / CK).iterdir()) == before
    assert step_of(d / CK / "step-00000005.pt") == 5


# --- 13: order by what the files say ---------------------------------------------------------------

def test_the_fallback_and_pruning_ignore_the_clock(tmp_path):
    # Synchronous saves: the test needs snapshots of exactly steps 10, 20, 30 and 40.
    sync = ["--async-save", "false"]
    run(["--run-dir", tmp_path, "--save-every-steps", 10, "--max-steps", 30] + sync)
    ckdir = tmp_path / CK
    # A clock stepped back (or files copied without -p): the newest snapshot looks oldest.
    for step, t in ((10, 3_000_000_000), (20, 2_000_000_000), (30, 1_000_000_000)):
        os.utime(ckdir / f"step-{step:08d}.pt", (t, t))
    last = ckdir / "last.pt"
    last.unlink()
    last.write_bytes(b"PK\x03\x04 damaged")
    code, out = run(["--run-dir", tmp_path, "--save-every-steps", 10, "--max-steps", 40] + sync)
    assert f"resumed from {ckdir}/step-00000030.pt" in out, out[-2000:]
    assert sorted(p.name for p in ckdir.glob("step-*.pt")) == ["step-00000020.pt", "step-00000030.pt",
                                                              "step-00000040.pt"]


# Full only: after a rollback, the abandoned timeline's newer snapshot is neither resumed nor pruned
# first; test_resume_path_is_not_applied_again_on_a_restart keeps the rollback and its restart.
@pytest.mark.full
def test_a_rollback_is_newer_than_the_timeline_it_abandons(tmp_path):
    run(["--run-dir", tmp_path, "--save-every-steps", 10, "--max-steps", 40, "--async-save", "false"])  # snapshots at exact steps
    ckdir = tmp_path / CK
    run(["--run-dir", tmp_path, "--resume", ckdir / "step-00000020.pt", "--save-every-steps", 5,
         "--keep-last", 3, "--max-steps", 30])
    # The rollback's 25 and 30 are kept, though by step alone they would go before the abandoned 40.
    assert sorted(p.name for p in ckdir.glob("step-*.pt")) == ["step-00000025.pt", "step-00000030.pt",
                                                              "step-00000040.pt"]
    # Whatever the clock says of them, the abandoned 40 is not where the run goes on.
    os.utime(ckdir / "step-00000040.pt", (4_000_000_000, 4_000_000_000))
    (ckdir / "last.pt").unlink()
    code, out = run(["--run-dir", tmp_path, "--max-steps", 31])
    assert f"resumed from {ckdir}/step-00000030.pt" in out, out[-2000:]


# --- 14, 15 -------------------------------------------------------------------------------------------

def test_max_steps_does_not_overshoot_on_restart(tmp_path):
    run(["--run-dir", tmp_path, "--max-steps", 5])
    code, out = run(["--run-dir", tmp_path, "--max-steps", 5])
    assert "nothing to train" in out
    assert step_of(tmp_path / CK / "last.pt") == 5


def test_a_forged_cursor_at_the_end_of_the_epoch_is_refused(tmp_path):
    run(["--run-dir", tmp_path / "a", "--max-steps", 3])
    c = load(tmp_path / "a" / CK / "last.pt")
    c["sampler"]["cursor"] = c["sampler"]["dataset_size"]
    forged = tmp_path / "forged.pt"
    save_with_checksum(c, forged)
    code, out = run(["--run-dir", tmp_path / "b", "--resume", forged, "--max-steps", 5], check=False)
    assert code == 1 and "field 'sampler': position out of range" in out, out[-2000:]
    assert "Segmentation" not in out and "terminate called" not in out


# --- 16: durable directories, one open file ---------------------------------------------------------

def strace(args, trace):
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (scripts/setup installs it)")
    p = subprocess.run(["strace", "-f", "-qq", "-o", str(trace), "-e",
                        "trace=mkdir,mkdirat,openat,fsync,rename,renameat,renameat2,fstat,newfstatat,statx,stat,read"]
                       + command(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:]
    return trace.read_text().splitlines()


def fsynced_dirs(lines):
    """Directory paths that were opened and then fsynced (per process and fd)."""
    open_fds, synced = {}, []
    for line in lines:
        pid = line.split()[0]
        m = re.search(r'openat\(AT_FDCWD, "([^"]+)", [^)]*O_DIRECTORY[^)]*\) = (\d+)', line)
        if m:
            open_fds[(pid, m.group(2))] = m.group(1)
        m = re.search(r"fsync\((\d+)\) += 0", line)
        if m and (pid, m.group(1)) in open_fds:
            synced.append(open_fds[(pid, m.group(1))])
    return synced


def test_new_directories_are_fsynced_in_their_parents(tmp_path):
    d = tmp_path / "new" / "run"
    lines = strace(["--run-dir", d, "--max-steps", 1], tmp_path / "trace")
    synced = fsynced_dirs(lines)
    for made, parent in ((tmp_path / "new", tmp_path), (d, tmp_path / "new"), (d / CK, d)):
        assert any(re.search(rf'mkdir(at)?\(.*"{made}"', l) for l in lines), f"{made} not created"
        assert str(parent) in synced, f"{made} was created but {parent} never fsynced: {synced}"
    # --resume never --force moves the checkpoints aside: that rename lives in the run directory.
    lines = strace(["--run-dir", d, "--max-steps", 1, "--resume", "never", "--force"], tmp_path / "trace2")
    renamed = [i for i, l in enumerate(lines) if re.search(rf'rename(at2?)?\(.*"{d / CK}".*"{d / CK}\.old-', l)]
    assert renamed, "checkpoints were not moved aside"
    assert str(d) in fsynced_dirs(lines[renamed[0]:])


def test_a_checkpoint_is_sized_through_the_descriptor_it_is_read_from(tmp_path):
    run(["--run-dir", tmp_path, "--max-steps", 1])
    size = (tmp_path / CK / "last.pt").stat().st_size  # the file the resume reads
    lines = strace(["--run-dir", tmp_path, "--max-steps", 2], tmp_path / "trace")
    last = str(tmp_path / CK / "last.pt")
    full_reads = 0
    for i, line in enumerate(lines):
        m = re.match(rf'(\d+) +openat\(AT_FDCWD, "{re.escape(last)}", O_RDONLY.*= (\d+)$', line)
        if not m:
            continue
        pid, fd = m.groups()
        # This descriptor's life: until the process opens something else under the same number.
        life = []
        for later in lines[i + 1:]:
            if later.startswith(pid + " ") and re.search(rf"openat\(.*= {fd}$", later):
                break
            if later.startswith(pid + " "):
                life.append(later)
        read_at = next((k for k, l in enumerate(life) if re.search(rf"\bread\({fd}, .*, {size}\) = {size}$", l)), None)
        if read_at is None:
            continue  # a look at the small meta record only
        full_reads += 1
        assert any(re.search(rf'(fstat\({fd},|newfstatat\({fd}, "",|statx\({fd}, "",)', l) for l in life[:read_at]), \
            "the whole file was read with a size not taken from the open descriptor"
    assert full_reads >= 1, "last.pt was never read whole"
