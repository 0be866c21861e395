"""Shared helpers for the integration tests: they launch the real `trainer` binary (alone, under
mpirun and under torchrun) on configs/tiny.json and inspect what it writes."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRAINER = os.environ.get("TRAINER", str(ROOT / "build" / "trainer"))
TINY = str(ROOT / "configs" / "tiny.json")
VENV_BIN = ROOT / ".venv" / "bin"
# mpirun's sigkill timeout, here and for the launch scripts (their SIGKILL_TIMEOUT_S). It is how long
# ranks get to save after mpirun forwards a SIGTERM (a tiny save takes 0.01 s); mpirun also waits about
# twice that before it exits once a rank returned non-zero (75 too), even when every rank has already
# exited: 19 s with 10, 4 s with 2. The tests stop mpirun with SIGUSR1, which it passes on as it is,
# so no save here waits on this timeout.
SIGKILL_TIMEOUT_S = "2"
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "odls_base_sigkill_timeout", SIGKILL_TIMEOUT_S]

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The ranks' OpenMP threads sleep when they wait (scripts/test sets the same for the unit tests). With
# libgomp's default spinning, a one-rank run's two threads on a 2-core machine that is doing anything
# else wait out each other's time slices: tiny's first epoch took 4 to 120 s, against 4 to 5 s. How
# threads wait changes no result.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Two scopes (issue 41). `scripts/test` runs the fast one (its default, and what an unset
# RESUMABLE_TEST_SCOPE means); `scripts/test --full` (CI) sets RESUMABLE_TEST_SCOPE=full. A case
# marked `full` runs in the full scope only; its marker's comment says what it adds to the cases
# that always run. FULL also sizes the trial counts of the randomized cases.
SCOPE = os.environ.get("RESUMABLE_TEST_SCOPE", "fast")
FULL = SCOPE == "full"


def pytest_configure(config):
    if SCOPE not in ("fast", "full"):
        raise pytest.UsageError(f"RESUMABLE_TEST_SCOPE={SCOPE}: expected fast or full")
    config.addinivalue_line("markers", "full: runs only with RESUMABLE_TEST_SCOPE=full (scripts/test --full)")


def pytest_report_header(config):
    return f"scope: {SCOPE} (RESUMABLE_TEST_SCOPE=full also runs the cases marked full)"


def pytest_collection_modifyitems(config, items):
    """Deselects the `full` cases in the fast scope (pytest counts them as deselected; a module whose
    cases are all `full` exits 5, which ctest reports as skipped)."""
    if FULL:
        return
    dropped = [item for item in items if item.get_closest_marker("full")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not item.get_closest_marker("full")]


def command(args, launcher="single", np=2):
    """The argv that runs the trainer with `args` under `launcher`."""
    base = [TRAINER, "--config", TINY] + [str(a) for a in args]
    if launcher == "single":
        return base
    if launcher == "mpirun":
        return MPIRUN + ["-np", str(np)] + base
    if launcher == "torchrun":
        return [str(VENV_BIN / "torchrun"), "--nproc-per-node", str(np), "--no-python"] + base
    raise ValueError(launcher)


def run(args, launcher="single", np=2, env=None, timeout=240, check=True):
    """Runs to completion; returns (exit code, combined output)."""
    full_env = dict(os.environ, **(env or {}))
    p = subprocess.run(command(args, launcher, np), env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise AssertionError(f"trainer exited {p.returncode}:\n{p.stdout[-4000:]}")
    return p.returncode, p.stdout


def start(args, launcher="single", np=2, env=None):
    """Starts in a session of its own (so the whole job can be signalled or killed like a node loss)."""
    full_env = dict(os.environ, **(env or {}))
    # SIGINT at its default, whoever started the tests: a shell without job control starts
    # background commands with SIGINT ignored, and the trainer (rightly) keeps it ignored then.
    return subprocess.Popen(command(args, launcher, np), env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True, stdin=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_line(proc, needle, timeout=120):
    """Reads the process's output until a line contains `needle`; returns everything read so far."""
    seen = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"never saw {needle!r}; output:\n{''.join(seen)[-3000:]}")


def answer_at_terminal(argv, answer, think_s=0.0, timeout=120):
    """Runs argv on a pseudo-terminal (CI unset, so it is interactive), waits for its "[Y/n]"
    question, waits think_s, types `answer` and Enter; returns (exit code, everything it printed)."""
    import pty
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    p = subprocess.Popen([str(a) for a in argv], stdin=follower, stdout=follower, stderr=follower, env=env,
                         close_fds=True)
    os.close(follower)
    seen = b""
    deadline = time.time() + timeout
    while b"[Y/n]" not in seen and time.time() < deadline:
        seen += os.read(leader, 4096)
    assert b"[Y/n]" in seen, seen.decode(errors="replace")
    time.sleep(think_s)
    os.write(leader, (answer + "\n").encode())
    while p.poll() is None:
        try:
            seen += os.read(leader, 4096)
        except OSError:
            break
    p.wait(timeout=timeout)
    os.close(leader)
    return p.returncode, seen.decode(errors="replace")


def launch_ranks(run_dir, port, extra, world=2, env=None):
    """`world` ranks with torchrun-style variables and no supervising launcher: only the trainer's
    own error handling and collective timeout stand between a lost peer and a hang."""
    procs = []
    for rank in range(world):
        env_r = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                     LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), **(env or {}))
        procs.append(subprocess.Popen(command(["--run-dir", run_dir, "--epochs", 50] + extra), env=env_r,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      stdin=subprocess.DEVNULL))
    return procs


def rank_pids(run_dir):
    """{rank: pid} of the trainer processes training in `run_dir`, whichever launcher started them."""
    pids = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
            if argv[0].decode() != TRAINER or str(run_dir).encode() not in argv:
                continue
            env = dict(kv.split(b"=", 1) for kv in (d / "environ").read_bytes().split(b"\0") if b"=" in kv)
        except (OSError, IndexError, UnicodeDecodeError):
            continue
        rank = env.get(b"OMPI_COMM_WORLD_RANK", env.get(b"RANK", env.get(b"SLURM_PROCID")))
        if rank is not None:
            pids[int(rank)] = int(d.name)
    return pids


def kill_session(proc, sig=signal.SIGKILL):
    """Signals every process of the job's session (mpirun gives each rank its own process group)."""
    out = subprocess.run(["ps", "-eo", "pid=,sid="], stdout=subprocess.PIPE, text=True).stdout
    for line in out.splitlines():
        pid, sid = (int(x) for x in line.split())
        if sid == proc.pid:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def load(path):
    import torch
    return torch.load(str(path), map_location="cpu", weights_only=True)


def assert_same_training(a, b, what=""):
    """Model, optimizer state and histories equal bit for bit."""
    import torch
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), f"{what}: model.{k} differs"
    for k in a["optimizer"]["state"]:
        for field in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(a["optimizer"]["state"][k][field], b["optimizer"]["state"][k][field]), f"{what}: optimizer {k}"
        assert a["optimizer"]["state"][k]["step"] == b["optimizer"]["state"][k]["step"]
    for k in a["history"]:
        if k == "resumed_at_step":
            continue
        assert torch.equal(a["history"][k], b["history"][k]), f"{what}: history.{k} differs"
    for k in ("train_state", "lr_scheduler", "sampler"):
        assert a[k] == b[k], f"{what}: {k} differs: {a[k]} vs {b[k]}"


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
    """An uninterrupted 2-rank run of tiny (2 epochs, 134 steps) to compare resumed runs against."""
    d = tmp_path_factory.mktemp("reference")
    run(["--run-dir", d], launcher="mpirun")
    return load(d / "checkpoints" / "last.pt")


# Run by hold_run_directory_lock in a process of its own: takes RUN_DIR/.lock as a job (or a tool)
# does, flock and then the holder record, says "locked", holds it for SECONDS (or until SIGTERM),
# and lets go in order.
_HOLD_LOCK = r"""
import fcntl, json, os, signal, socket, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
run_dir, seconds, tool = sys.argv[1], float(sys.argv[2]), sys.argv[3]
os.makedirs(run_dir, exist_ok=True)
fd = os.open(os.path.join(run_dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
record = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
if tool:
    record["tool"] = tool
os.ftruncate(fd, 0)
os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
print("locked", flush=True)
try:
    time.sleep(seconds)
finally:
    os.ftruncate(fd, 0)
    os.close(fd)
"""


def hold_run_directory_lock(run_dir, seconds, tool=""):
    """A process holding run_dir's lock for `seconds` as a training job would (or as `tool`, e.g.
    "ckpt clean"); returns once it holds it. Its pid is the one the lock names; terminate() makes
    it let go in order at once."""
    p = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run_dir), str(seconds), tool],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p
