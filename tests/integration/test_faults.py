"""Issue 6: break things for real (kill -9 while saving, dead and hung peers, full and read-only
disks, damaged and hostile checkpoint files, bad config and data) and show nothing is lost."""
import os
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from ckpt_tools import save_with_checksum
from conftest import FULL, TINY, TRAINER, command, kill_session, launch_ranks, load, run, start, wait_for_line

CRASH_MARKERS = ("terminate called", "Segmentation", "core dumped", "Exception raised from", "Traceback")


def verify(paths):
    p = subprocess.run([TRAINER, "ckpt", "verify", *map(str, paths)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    return p.returncode, p.stdout


def checkpoint_files(d):
    return sorted(p for p in Path(d).glob("*.pt"))


def temporaries(d):
    return sorted(p for p in Path(d).glob(".*.tmp.*"))


# ---------------------------------------------------------------------------------------------
# kill -9 at random instants while checkpoints are being written

# The fast scope runs the first 4 single-rank trials of the same seeded sequence (full: 12); the other
# 8 aim at other instants of a save, in a run resumed more times.
@pytest.mark.parametrize("launcher,trials", [("single", 12 if FULL else 4), ("mpirun", 4)])
def test_kill9_during_saves_never_leaves_a_bad_checkpoint(tmp_path, launcher, trials):
    rng = random.Random(1234)
    failures, killed_mid_write = [], 0
    run_dir = tmp_path / "run"
    ckdir = run_dir / "checkpoints"
    for trial in range(trials):
        # 10 ms per 64 KiB written: a ~3 MB save takes about half a second, most of each step.
        p = start(["--run-dir", run_dir, "--save-every-steps", 3, "--epochs", 50, "--log-every-steps", 1],
                  launcher=launcher, np=2, env={"RESUMABLE_TEST_WRITE_DELAY_MS": "10"})
        # Aim at one of the next three saves after where this trial starts (the step's log line comes
        # just before its save), anywhere from its start to a little past its end, whatever the load.
        started = wait_for_line(p, "training:").splitlines()[-1]
        first = int(re.search(r"step (\d+)/", started).group(1))
        wait_for_line(p, f"step {(first // 3 + rng.randint(1, 3)) * 3}/")
        time.sleep(rng.uniform(0.0, 0.6))
        kill_session(p, signal.SIGKILL)
        p.wait(timeout=30)
        p.stdout.close()
        if temporaries(ckdir):
            killed_mid_write += 1
        files = checkpoint_files(ckdir)
        if not files:
            continue  # killed before the first save finished: nothing to lose yet
        code, out = verify(files)
        if code != 0:
            failures.append(f"trial {trial}: {out}")
            continue
        # The run comes back: it resumes from the newest checkpoint and cleans the temporaries.
        step = load(ckdir / "last.pt")["train_state"]["global_step"]
        code, out = run(["--run-dir", run_dir, "--max-steps", step + 1], launcher=launcher, check=False)
        if code != 0 or f"step {step}" not in out:
            failures.append(f"trial {trial}: resume failed ({code}): {out[-2000:]}")
        if temporaries(ckdir):
            failures.append(f"trial {trial}: temporaries left after resume: {temporaries(ckdir)}")
    print(f"kill -9 trials: {trials}, killed while a file was being written: {killed_mid_write}, failures: {len(failures)}")
    assert not failures, "\n".join(failures)
    assert killed_mid_write >= trials // 3, "the kills hardly ever hit a save: the test proves little"


# ---------------------------------------------------------------------------------------------
# peers that die or hang

def rank_pids(session_leader, rank):
    out = subprocess.run(["ps", "-eo", "pid=,sid="], stdout=subprocess.PIPE, text=True).stdout
    pids = []
    for line in out.splitlines():
        pid, sid = (int(x) for x in line.split())
        if sid != session_leader:
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"OMPI_COMM_WORLD_RANK={rank}".encode() in env and b"OMPI_COMM_WORLD_SIZE=2" in env:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"trainer" in cmd and b"mpirun" not in cmd:
                pids.append(pid)
    return pids


# Full only: a rank killed under plain mpirun, the job's end within a minute and the files verified;
# test_launch_scripts' restart wrapper kills a rank twice and resumes each time (fast).
@pytest.mark.full
def test_killed_nonzero_rank_stops_the_job_and_the_restart_resumes(tmp_path):
    p = start(["--run-dir", tmp_path, "--save-every-steps", 10, "--epochs", 50, "--timeout-seconds", 20], launcher="mpirun")
    wait_for_line(p, "step 40/")
    pids = rank_pids(p.pid, 1)
    assert pids, "rank 1 not found"
    t0 = time.time()
    os.kill(pids[0], signal.SIGKILL)
    out, _ = p.communicate(timeout=120)
    assert p.returncode != 0
    assert time.time() - t0 < 60
    assert verify(checkpoint_files(tmp_path / "checkpoints"))[0] == 0
    step = load(tmp_path / "checkpoints" / "last.pt")["train_state"]["global_step"]
    code, out = run(["--run-dir", tmp_path, "--max-steps", step + 5, "--epochs", 50], launcher="mpirun")
    assert f"step {step}" in out and "resumed from" in out


# Full only: a two-rank world, where the lost rank is rank 0's only peer. The three-rank test below
# loses a rank in the same two ways and asserts more (both survivors' exit within the timeout, one
# error line each, the group left undestroyed).
@pytest.mark.full
@pytest.mark.parametrize("how", ["dies", "hangs"])
def test_lost_peer_makes_the_other_rank_fail_not_hang(tmp_path, how):
    timeout_s = 8
    procs = launch_ranks(tmp_path, 29000 + random.randrange(1000), ["--timeout-seconds", timeout_s])
    wait_for_line(procs[0], "step 20/")
    t0 = time.time()
    procs[1].send_signal(signal.SIGKILL if how == "dies" else signal.SIGSTOP)
    try:
        out, _ = procs[0].communicate(timeout=timeout_s * 6)
    finally:
        procs[1].kill()
        procs[1].wait()
    elapsed = time.time() - t0
    assert procs[0].returncode not in (0, None)
    assert elapsed < timeout_s * 4, f"rank 0 took {elapsed:.0f}s to notice"
    assert not any(m in out for m in ("Segmentation", "core dumped")), out[-2000:]
    print(f"peer {how}: rank 0 exited {procs[0].returncode} after {elapsed:.1f}s (timeout {timeout_s}s)")


@pytest.mark.parametrize("how", ["dies", "hangs"])
def test_survivors_of_a_lost_rank_exit_within_the_timeout_and_never_destroy_the_group(tmp_path, how):
    """Issue 41, hole 5: of three ranks, rank 2 is killed (kill -9) or frozen (SIGSTOP) mid-training.
    Ranks 0 and 1 each log one error line and exit non-zero within the collective timeout plus a
    margin, and neither destroys its process group on the way out: a group with a dead or hung peer
    may block in its destructor (NCCL's; gloo's finishes its queued work first, each piece bounded
    only by the timeout). RESUMABLE_TEST_REPORT_TEARDOWN makes each rank say what became of its group."""
    timeout_s = 10
    report = {"RESUMABLE_TEST_REPORT_TEARDOWN": "1"}
    procs = launch_ranks(tmp_path, 29000 + random.randrange(1000), ["--timeout-s", timeout_s], world=3, env=report)
    try:
        wait_for_line(procs[0], "step 20/")
        t0 = time.time()
        procs[2].send_signal(signal.SIGKILL if how == "dies" else signal.SIGSTOP)
        outs, elapsed = {}, {}
        for r in (0, 1):
            outs[r], _ = procs[r].communicate(timeout=timeout_s * 6)
            elapsed[r] = time.time() - t0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for r in (0, 1):
        out = outs[r]
        assert procs[r].returncode not in (0, None), out[-2000:]
        assert elapsed[r] < timeout_s + 8, f"rank {r} took {elapsed[r]:.1f}s to exit (timeout {timeout_s}s)"
        assert re.search(rf"\[rank {r}/3\] error: ", out), out[-2000:]
        assert f"rank {r}: process group abandoned" in out, out[-2000:]
        assert "process group destroying" not in out, out[-2000:]
        assert not any(m in out for m in CRASH_MARKERS), out[-2000:]
    print(f"rank 2 {how}: ranks 0 and 1 exited {procs[0].returncode}/{procs[1].returncode} after "
          f"{elapsed[0]:.1f}s/{elapsed[1]:.1f}s (timeout {timeout_s}s)")


def test_an_orderly_end_destroys_the_process_group(tmp_path):
    """The other side of the test above: a run that ends well still tears its group down in order."""
    code, out = run(["--run-dir", tmp_path, "--max-steps", 2], env={"RESUMABLE_TEST_REPORT_TEARDOWN": "1"})
    assert "rank 0: process group destroying" in out and "abandoned" not in out, out[-2000:]


# ---------------------------------------------------------------------------------------------
# full and read-only disks

def can_mount():
    probe = Path("/tmp/resumable-mount-probe")
    probe.mkdir(exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], stderr=subprocess.DEVNULL).returncode == 0
    if ok:
        subprocess.run(["umount", str(probe)])
    return ok


def small_disk_of(tmp_path, size):
    """A file system of `size` (tmpfs) at tmp_path/disk, for fixtures: yields its path."""
    if not can_mount():
        pytest.skip("cannot mount a tmpfs here (no privilege); the file-size-limit test covers full disks")
    d = tmp_path / "disk"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)], check=True)
    yield d
    subprocess.run(["umount", "-l", str(d)])


@pytest.fixture
def small_disk(tmp_path):
    yield from small_disk_of(tmp_path, "5m")


def assert_save_failure_handled(run_dir, code, out, good_step):
    assert code == 74, out[-3000:]
    assert "checkpoint not saved" in out
    # Periodic saves back off after a failure (10 s, then 20 s) and fail up to 3 times in a row before the
    # run stops; a failed final save stops it at once, after however many periodic failures came first.
    assert re.search(r"stopping: [123] failed save\(s\) in a row; the last good checkpoint is untouched", out), out[-2000:]
    ckdir = run_dir / "checkpoints"
    assert not temporaries(ckdir), f"partial files left: {temporaries(ckdir)}"
    code, vout = verify(checkpoint_files(ckdir))
    assert code == 0, vout
    assert load(ckdir / "last.pt")["train_state"]["global_step"] == good_step


def test_disk_full_keeps_the_previous_checkpoint(small_disk):
    # 5 MB holds one 3 MB checkpoint but not a second one beside it.
    code, out = run(["--run-dir", small_disk, "--save-every-steps", 5, "--max-steps", 40], check=False)
    assert "No space left on device" in out
    assert_save_failure_handled(small_disk, code, out, good_step=5)


# Full only: EFBIG rather than ENOSPC, and the periodic saves' backoff waited out (about 55 s); the
# kept full-disk and read-only cases end the same way. Where no tmpfs can be mounted (no root) it
# is the only full-disk-like case: scripts/test --full there.
@pytest.mark.full
def test_file_size_limit_keeps_the_previous_checkpoint(tmp_path):
    run(["--run-dir", tmp_path, "--max-steps", 5])
    # ulimit -f in KiB: below one checkpoint, so every later write fails (EFBIG).
    cmd = " ".join(f"'{c}'" for c in command(["--run-dir", tmp_path, "--save-every-steps", 5, "--max-steps", 40]))
    p = subprocess.run(["bash", "-c", f"ulimit -f 1024; exec {cmd}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    assert "File too large" in p.stdout
    assert_save_failure_handled(tmp_path, p.returncode, p.stdout, good_step=5)


def test_read_only_checkpoint_directory(tmp_path):
    run(["--run-dir", tmp_path, "--max-steps", 5])
    ckdir = tmp_path / "checkpoints"
    # chattr +i makes the directory refuse new entries even to root.
    if subprocess.run(["chattr", "+i", str(ckdir)], stderr=subprocess.DEVNULL).returncode != 0:
        pytest.skip("chattr +i is not supported on this file system")
    try:
        code, out = run(["--run-dir", tmp_path, "--max-steps", 10], check=False)
    finally:
        subprocess.run(["chattr", "-i", str(ckdir)])
    assert code == 74 and "Operation not permitted" in out, out[-2000:]
    assert_save_failure_handled(tmp_path, code, out, good_step=5)


# ---------------------------------------------------------------------------------------------
# damaged and hostile checkpoint files

@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    run(["--run-dir", d, "--max-steps", 3])
    return d / "checkpoints" / "last.pt"


def content_spans(archive: bytes):
    """(offset, size) of the pickle and tensor records inside a checkpoint zip, largest first."""
    import io
    import struct
    import zipfile
    spans = []
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        for info in z.infolist():
            name = info.filename.split("/", 1)[1]
            if name == "data.pkl" or name.startswith("data/"):
                name_len, extra_len = struct.unpack_from("<HH", archive, info.header_offset + 26)
                if info.file_size:
                    spans.append((info.header_offset + 30 + name_len + extra_len, info.file_size))
    return sorted(spans, key=lambda s: -s[1])


def damaged_variants(good: Path, out: Path):
    data = good.read_bytes()
    rng = random.Random(5)
    files = {}

    def put(name, payload):
        files[name] = out / f"{name}.pt"
        files[name].write_bytes(payload)

    put("empty", b"")
    put("random", bytes(rng.randrange(256) for _ in range(4096)))
    put("zip-header-then-junk", data[:64] + bytes(rng.randrange(256) for _ in range(4096)))
    for k in range(12):
        put(f"truncated-{k}", data[: int(len(data) * (k + 0.5) / 12)])
    # Bit flips inside the contents (the pickle and tensor records), not in zip padding.
    spans = content_spans(data)
    for k in range(8):
        b = bytearray(data)
        start, size = spans[k % len(spans)]
        pos = start + rng.randrange(size)
        b[pos] ^= 1 << rng.randrange(8)
        put(f"bitflip-{k}", bytes(b))

    # Valid archives with a valid checksum whose contents are wrong: the layout checks must refuse.
    def mutated(name, change):
        c = load(good)
        change(c)
        files[name] = out / f"{name}.pt"
        save_with_checksum(c, files[name])

    mutated("missing-model", lambda c: c.pop("model"))
    mutated("missing-sampler-cursor", lambda c: c["sampler"].pop("cursor"))
    mutated("step-is-a-string", lambda c: c["train_state"].__setitem__("global_step", "many"))
    mutated("history-wrong-dtype", lambda c: c["history"].__setitem__("train_loss", c["history"]["train_loss"].float()))
    mutated("weight-wrong-shape", lambda c: c["model"].__setitem__("source_embedding.weight", torch.zeros(3, 3)))
    mutated("future-format", lambda c: c.__setitem__("format_version", 99))
    mutated("config-unknown-key", lambda c: c["config"].__setitem__("warp_drive", 1))
    mutated("cursor-out-of-range", lambda c: c["sampler"].__setitem__("cursor", 10 ** 9))
    mutated("cursor-at-end-of-epoch", lambda c: c["sampler"].__setitem__("cursor", c["sampler"]["dataset_size"]))
    mutated("negative-step", lambda c: c["train_state"].__setitem__("global_step", -1))
    mutated("best-step-in-the-future", lambda c: c["train_state"].__setitem__("best_step", 10 ** 6))
    mutated("schedule-off-by-one", lambda c: c["lr_scheduler"].__setitem__("step", c["lr_scheduler"]["step"] + 1))
    mutated("history-one-short", lambda c: c["history"].__setitem__("learning_rate", c["history"]["learning_rate"][:-1]))
    mutated("rng-missing-rank", lambda c: c["rng"].__setitem__("cpu", []))
    files["top-level-list"] = out / "top-level-list.pt"
    save_with_checksum([1, 2, 3], files["top-level-list"])
    return files


def test_every_damaged_file_is_refused_cleanly(tmp_path, good_checkpoint):
    files = damaged_variants(good_checkpoint, tmp_path)
    if not FULL:
        # Every third variant (one start each): the empty file, cuts at a spread of lengths, bit
        # flips and wrong contents stay in; the full scope tries each of the 40-odd, junk included.
        files = dict(list(files.items())[::3])
    problems = []
    for name, path in files.items():
        code, out = run(["--run-dir", tmp_path / f"run-{name}", "--resume", path, "--max-steps", 1], check=False,
                        timeout=60)
        errors = [l for l in out.splitlines() if "error" in l]
        if code != 1:
            problems.append(f"{name}: exit {code}")
        if not any(str(path) in l for l in errors):
            problems.append(f"{name}: no error line naming the file: {out[-500:]}")
        if any(m in out for m in CRASH_MARKERS):
            problems.append(f"{name}: crash output: {out[-500:]}")
        if "PytorchStreamReader" in out:
            problems.append(f"{name}: the zip reader's own words, not the user's: {out[-500:]}")
        vcode, vout = verify([path])
        if vcode == 0 or not vout.startswith("BAD"):
            problems.append(f"{name}: ckpt verify accepted it: {vout}")
    print(f"damaged checkpoint variants tried: {len(files)}, problems: {len(problems)}")
    assert not problems, "\n".join(problems)


def test_specific_messages(tmp_path, good_checkpoint):
    files = damaged_variants(good_checkpoint, tmp_path)
    expect = {
        "empty": "empty file",
        "random": "not a checkpoint",
        "bitflip-0": "checksum mismatch",
        "missing-model": "field 'model': missing",
        "step-is-a-string": "field 'train_state.global_step': expected an integer, found a string",
        "history-wrong-dtype": "field 'history.train_loss': expected dtype Double, found Float",
        "future-format": "format version 99 is newer than this trainer reads",
        "config-unknown-key": "unknown key 'warp_drive'",
        "cursor-out-of-range": "field 'sampler': position out of range",
        "cursor-at-end-of-epoch": "field 'sampler': position out of range",
        "negative-step": "field 'train_state.global_step': expected >= 0",
        "best-step-in-the-future": "field 'train_state.best_step': out of range",
        "schedule-off-by-one": "field 'lr_scheduler.step': is 4, train_state.global_step 3",
        "history-one-short": "field 'history.learning_rate': has 2 entries for global_step 3",
        "rng-missing-rank": "expected one state per rank",
        "top-level-list": "top level is not a dict",
    }
    for name, text in expect.items():
        code, out = verify([files[name]])
        assert text in out, f"{name}: {out}"


def test_a_damaged_file_to_resume_from_says_what_to_do_next(tmp_path, good_checkpoint):
    files = damaged_variants(good_checkpoint, tmp_path)
    for name in ["truncated-3", "bitflip-0"]:
        code, out = run(["--run-dir", tmp_path / f"run-{name}", "--resume", files[name], "--max-steps", 1],
                        check=False, timeout=60)
        error = next(l for l in out.splitlines() if "error" in l and str(files[name]) in l)
        assert code == 1, out[-2000:]
        assert f"`trainer ckpt list {tmp_path}` shows which checkpoints there are good" in error, error
        assert "--resume auto resumes from the run directory's newest good one" in error, error
    code, out = verify([files["truncated-3"]])
    assert "its zip structure is broken" in out and "PytorchStreamReader" not in out, out


def test_wrong_shape_is_refused_at_load(tmp_path, good_checkpoint):
    files = damaged_variants(good_checkpoint, tmp_path)
    code, out = run(["--run-dir", tmp_path / "r", "--resume", files["weight-wrong-shape"], "--max-steps", 1], check=False)
    assert code == 1
    assert "field 'model.source_embedding.weight': expected shape [" in out


# ---------------------------------------------------------------------------------------------
# bad config and data: one line, exit code 2

@pytest.mark.parametrize("args,text", [
    (["--epochs", "zero"], "--epochs: expected an integer, got 'zero'"),
    (["--dropout", "1.5"], "field 'dropout': expected a number in [0, 1)"),
    (["--device", "tpu"], "field 'device': expected one of cpu|cuda|auto"),
    (["--no-such-flag", "1"], "no-such-flag"),
    (["--data", "/nonexistent/cmudict.dict"], "/nonexistent/cmudict.dict: cannot open dataset"),
])
def test_bad_flags_exit_2_with_one_line(tmp_path, args, text):
    code, out = run(["--run-dir", tmp_path] + args, check=False)
    assert code == 2, out
    assert text in out, out
    assert not any(m in out for m in CRASH_MARKERS)


@pytest.mark.parametrize("content,text", [
    ('{"no_such_key": 1}', "unknown key 'no_such_key'"),
    ('{"batch_size": "big"}', "field 'batch_size': expected an integer, got a string"),
    ('{"lr": -1}', "field 'lr': expected a number > 0"),
    ('{"d_model": 10, "heads": 4}', "field 'heads': expected a divisor of d_model=10"),
    ('{"epochs": 2,}', "not valid JSON"),
])
def test_bad_config_files_exit_2(tmp_path, content, text):
    cfg = tmp_path / "bad.json"
    cfg.write_text(content)
    p = subprocess.run([TRAINER, "--config", str(cfg), "--run-dir", str(tmp_path / "r")], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    assert p.returncode == 2, p.stdout
    assert str(cfg) in p.stdout and text in p.stdout, p.stdout


def test_malformed_dictionary_line_exit_2(tmp_path):
    d = tmp_path / "bad.dict"
    d.write_text("able EY B AH L\nbaker B EY K ER\ncharlie\n")
    code, out = run(["--run-dir", tmp_path / "r", "--data", d], check=False)
    assert code == 2 and f"{d}:3: expected 'word PH ON EMES'" in out, out
