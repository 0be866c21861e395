"""Issue 6: the launch scripts users run: the restart wrapper, mpirun/torchrun one-node scripts,
and the Slurm batch script on a real one-node Slurm (preemption signal, save, requeue, resume).
Issue 12, items 1-2: every way Slurm stops a job saves it, and requeues it unless it was cancelled;
one Ctrl-C at a terminal saves and exits 75 under every launch script; a stop signal during the
restart wrapper's delay stops it. RESUMABLE_LAUNCH_DIR points these tests at another copy of
launch/ (e.g. an older commit's, to see which of them it fails)."""
import fcntl
import os
import pty
import re
import shutil
import signal
import socket
import subprocess
import termios
import threading
import time
from pathlib import Path

import pytest

from conftest import (ROOT, SIGKILL_TIMEOUT_S, TINY, TRAINER, hold_run_directory_lock, kill_session, load, rank_pids,
                      wait_for_line)

LAUNCH = Path(os.environ.get("RESUMABLE_LAUNCH_DIR", ROOT / "launch"))
# Trainer flags for a run that only ends when it is stopped.
ENDLESS = ["--config", TINY, "--epochs", "1000"]


def trainer_pids(run_dir):
    """The trainer processes (ranks) working on run_dir."""
    pids = []
    for pid in subprocess.run(["pgrep", "-f", "--", f"--run-dir {run_dir}"], stdout=subprocess.PIPE, text=True).stdout.split():
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "trainer":
                pids.append(int(pid))
        except OSError:
            pass
    return pids


def kill_ranks(run_dir):
    """Cleanup: SIGKILL any rank still working on run_dir (the launch scripts give their children
    sessions of their own, so killing the launcher's session does not reach them)."""
    for pid in trainer_pids(run_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop_steps(log):
    """The step at which every rank logged that it stopped, and the signal(s) named."""
    stops = re.findall(r"stopped by (SIG[A-Z0-9]+)[^\n]*? at step (\d+): checkpoint saved, exit 75", log)
    assert stops, f"no rank saved and stopped:\n{log[-3000:]}"
    assert len({step for _, step in stops}) == 1, stops
    return int(stops[0][1]), {sig for sig, _ in stops}


def test_mpirun_and_torchrun_scripts(tmp_path):
    for script in ("mpirun-1node.sh", "torchrun-1node.sh"):
        d = tmp_path / script
        p = subprocess.run([str(LAUNCH / script), "2", "--config", TINY, "--run-dir", str(d), "--max-steps", "4"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=240)
        assert p.returncode == 0, p.stdout[-3000:]
        assert load(d / "checkpoints" / "last.pt")["world_size"] == 2


def test_restart_wrapper_resumes_after_crashes(tmp_path):
    """Each launch is killed (kill -9 of a rank, like a crash) after some progress; the wrapper
    relaunches and every launch resumes where the last checkpoint left off, until training ends."""
    wrapper = subprocess.Popen(
        [str(LAUNCH / "run-with-restarts.sh"), "5", str(LAUNCH / "mpirun-1node.sh"), "2", "--config", TINY,
         "--run-dir", str(tmp_path), "--save-every-steps", "10", "--epochs", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env=dict(os.environ, RESTART_DELAY_S="0.5", SIGKILL_TIMEOUT_S=SIGKILL_TIMEOUT_S))
    crashes = 0
    log = ""
    for _ in range(2):
        log += wait_for_line(wrapper, "step 40/" if crashes == 0 else "resumed from", timeout=240)
        log += wait_for_line(wrapper, "saved", timeout=240)
        # Kill one rank hard: mpirun then takes the job down with a non-zero exit.
        ranks = subprocess.run(["pgrep", "-f", f"trainer --config {TINY} --run-dir {tmp_path}"],
                               stdout=subprocess.PIPE, text=True).stdout.split()
        ranks = [int(r) for r in ranks if "mpirun" not in Path(f"/proc/{r}/cmdline").read_text(errors="ignore")]
        assert ranks, "no rank found"
        os.kill(max(ranks), signal.SIGKILL)
        crashes += 1
    out, _ = wrapper.communicate(timeout=300)
    log += out
    assert wrapper.returncode == 0, log[-3000:]
    assert log.count("run-with-restarts: exit") == 2
    assert log.count("resumed from") >= 2
    ck = load(tmp_path / "checkpoints" / "last.pt")
    assert ck["train_state"]["epoch"] == 2 and ck["train_state"]["global_step"] == 134


def test_restart_wrapper_stops_on_bad_input(tmp_path):
    p = subprocess.run([str(LAUNCH / "run-with-restarts.sh"), "3", TRAINER, "--config", TINY, "--dropout", "7"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert p.returncode == 2 and "restart" not in p.stdout


def test_restart_wrapper_retries_while_another_job_holds_the_run_directory(tmp_path):
    """Issue 41, hole 7: another job holds the run directory's lock (the old job of a requeue still
    saving, say): the ranks exit 69, and the wrapper runs them again after LOCK_RETRY_DELAY_S until
    the lock is free, without spending a crash restart (MAX_RESTARTS 0 here)."""
    run_dir = tmp_path / "run"
    holder = hold_run_directory_lock(run_dir, 120)
    wrapper = subprocess.Popen(
        [str(LAUNCH / "run-with-restarts.sh"), "0", str(LAUNCH / "mpirun-1node.sh"), "2", "--config", TINY,
         "--run-dir", str(run_dir), "--max-steps", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, stdin=subprocess.DEVNULL,
        env=dict(os.environ, LOCK_RETRY_DELAY_S="3", SIGKILL_TIMEOUT_S=SIGKILL_TIMEOUT_S))
    try:
        log = wait_for_line(wrapper, "run-with-restarts: exit 69 (run directory in use by another job), retry 1/10 in 3s")
        holder.terminate()  # the other job ends in order
        holder.wait()
        out, _ = wrapper.communicate(timeout=240)
        log += out
    finally:
        kill_session(wrapper)
        kill_ranks(run_dir)
        holder.kill()
    assert wrapper.returncode == 0, log[-3000:]
    assert f"is in use by another job (pid {holder.pid} on host" in log, log[-3000:]
    assert "giving up" not in log and "restart 1/" not in log
    assert load(run_dir / "checkpoints" / "last.pt")["train_state"]["global_step"] == 4


def test_restart_wrapper_gives_up_on_a_busy_run_directory_after_lock_retries(tmp_path):
    """A job that keeps the lock: LOCK_RETRIES relaunches, then exit 69; the crash restarts are untouched."""
    run_dir = tmp_path / "run"
    holder = hold_run_directory_lock(run_dir, 120)
    try:
        p = subprocess.run([str(LAUNCH / "run-with-restarts.sh"), "3", TRAINER, "--config", TINY, "--run-dir",
                            str(run_dir), "--max-steps", "4"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
                           stdin=subprocess.DEVNULL, env=dict(os.environ, LOCK_RETRY_DELAY_S="0.2", LOCK_RETRIES="2"))
    finally:
        holder.kill()
        holder.wait()
    assert p.returncode == 69, p.stdout[-3000:]
    assert p.stdout.count("is in use by another job") == 3, p.stdout[-3000:]
    assert "retry 2/2" in p.stdout and "still in use by another job after 2 retries, exit 69" in p.stdout
    assert "restart 1/3" not in p.stdout


class Terminal:
    """A command run as if typed at a terminal: a pseudo-terminal is its controlling terminal and its
    process group is the terminal's foreground group, so writing b"\\x03" to the master side is a real
    Ctrl-C (the kernel's line discipline sends SIGINT to that whole group)."""

    def __init__(self, argv, env):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen([str(a) for a in argv], stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True,
                                     preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.chunks = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO once no process holds the terminal any more
                return
            if not data:
                return
            self.chunks.append(data)

    def output(self):
        return b"".join(self.chunks).decode(errors="replace")

    def wait_for(self, text, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.output():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"never saw {text!r}:\n{self.output()[-3000:]}")

    def ctrl_c(self):
        os.write(self.master, b"\x03")

    def close(self):
        if self.proc.poll() is None:
            kill_session(self.proc)
            self.proc.wait(timeout=30)
        os.close(self.master)


CTRL_C_CASES = {
    # name: (command before the trainer flags, the signal the ranks report)
    "trainer": ([TRAINER], "SIGINT"),
    "restarts-trainer": ([LAUNCH / "run-with-restarts.sh", "3", TRAINER], "SIGINT"),
    "restarts-mpirun": ([LAUNCH / "run-with-restarts.sh", "3", LAUNCH / "mpirun-1node.sh", "2"], "SIGUSR1"),
    "mpirun": ([LAUNCH / "mpirun-1node.sh", "2"], "SIGUSR1"),
    "torchrun": ([LAUNCH / "torchrun-1node.sh", "2"], "SIGINT"),
    "restarts-torchrun": ([LAUNCH / "run-with-restarts.sh", "3", LAUNCH / "torchrun-1node.sh", "2"], "SIGINT"),
    # The several-node scripts, here with one node.
    "mpirun-multinode": ([LAUNCH / "mpirun-multinode.sh", "{hostfile}", "2"], "SIGUSR1"),
    "torchrun-multinode": ([LAUNCH / "torchrun-multinode.sh", "1", "2", "127.0.0.1:{port}", "ctrl-c"], "SIGINT"),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Fast scope: the trainer alone, each launch script, and the restart wrapper around one of them.
# Full only: the wrapper around the trainer alone and around torchrun (the same wrapper trap as
# restarts-mpirun; what they add is the child's own SIGINT from the terminal passing through it).
FULL_CTRL_C_CASES = {"restarts-trainer", "restarts-torchrun"}


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.full) if c in FULL_CTRL_C_CASES else c
                                  for c in CTRL_C_CASES])
def test_one_ctrl_c_at_a_terminal_saves_and_exits_75(tmp_path, case):
    """One Ctrl-C typed at the terminal, whatever runs the trainer: the ranks save at one step, every
    process exits, the command returns 75 (never 130 from a second SIGINT, never 1 from torchrun),
    and nothing is relaunched."""
    prefix, expected_signal = CTRL_C_CASES[case]
    (tmp_path / "hosts").write_text("localhost slots=2\n")
    prefix = [str(a).format(hostfile=tmp_path / "hosts", port=free_port()) for a in prefix]
    run_dir = tmp_path / "run"
    term = Terminal(prefix + ENDLESS + ["--run-dir", run_dir], env=dict(os.environ, SIGKILL_TIMEOUT_S=SIGKILL_TIMEOUT_S))
    try:
        term.wait_for("step 20/")
        # The scripts must not leave SIGINT ignored (a trainer that keeps an ignored signal ignored
        # would lose the one passed on; one that installs its handler anyway hides it here).
        for pid in trainer_pids(run_dir):
            ignored = int(re.search(r"SigIgn:\s*([0-9a-f]+)", Path(f"/proc/{pid}/status").read_text()).group(1), 16)
            assert not ignored & (1 << (signal.SIGINT - 1)), f"rank {pid} ignores SIGINT"
        term.ctrl_c()
        code = term.proc.wait(timeout=90)
        time.sleep(0.5)
        log = term.output()
        leftover = trainer_pids(run_dir)
    finally:
        term.close()
        kill_ranks(run_dir)
    assert code == 75, f"exit {code}:\n{log[-3000:]}"
    step, signals = stop_steps(log)
    assert signals == {expected_signal}, signals
    assert "second SIGINT" not in log
    assert "run-with-restarts: exit" not in log and "resumed from" not in log, "relaunched after the stop"
    assert load(run_dir / "checkpoints" / "last.pt")["train_state"]["global_step"] == step
    assert not leftover, "a rank outlived its launcher"


def test_restart_wrapper_starts_its_command_with_sigint_not_ignored():
    """A non-interactive shell starts background commands with SIGINT and SIGQUIT ignored, and a
    trainer keeps an ignored signal ignored (as nohup's SIGHUP): the wrapper must restore them, or
    the SIGINT it passes on would be lost."""
    p = subprocess.run([str(LAUNCH / "run-with-restarts.sh"), "0", "grep", "SigIgn", "/proc/self/status"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout
    ignored = int(p.stdout.split()[-1], 16)
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP):
        assert not ignored & (1 << (sig - 1)), f"{sig.name} ignored: {p.stdout}"


def test_restart_wrapper_stops_when_signalled_during_the_restart_delay(tmp_path):
    """A crash (kill -9 of the rank), then SIGTERM while the wrapper waits RESTART_DELAY_S before the
    relaunch: the wrapper exits at once with 75 and relaunches nothing."""
    run_dir = tmp_path / "run"
    wrapper = subprocess.Popen([str(LAUNCH / "run-with-restarts.sh"), "3", TRAINER] + ENDLESS + ["--run-dir", str(run_dir)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               stdin=subprocess.DEVNULL, env=dict(os.environ, RESTART_DELAY_S="60"))
    try:
        log = wait_for_line(wrapper, "step 20/")
        ranks = trainer_pids(run_dir)
        assert len(ranks) == 1, ranks
        os.kill(ranks[0], signal.SIGKILL)
        log += wait_for_line(wrapper, "run-with-restarts: exit")
        time.sleep(1)  # now in the restart delay
        t0 = time.time()
        wrapper.send_signal(signal.SIGTERM)
        rest, _ = wrapper.communicate(timeout=20)
        elapsed = time.time() - t0
        time.sleep(1)
        leftover = trainer_pids(run_dir)
    finally:
        kill_session(wrapper)
        kill_ranks(run_dir)
    log += rest
    assert wrapper.returncode == 75, log[-3000:]
    assert elapsed < 5, f"the wrapper took {elapsed:.1f}s to stop"
    assert log.count("training: epoch") == 1 and "resumed from" not in log, "relaunched after the stop signal"
    assert not leftover, "a rank was relaunched"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """One local Slurm cluster for every Slurm test of this module (starting one takes seconds)."""
    if shutil.which("slurmctld") is None or shutil.which("sbatch") is None:
        pytest.skip("slurm-wlm is not installed (scripts/setup installs it)")
    d = tmp_path_factory.mktemp("slurm")
    # Two stand-in GPUs (GRES on device files): the GPU requests of the batch script can be checked.
    start = subprocess.run([str(ROOT / "scripts" / "slurm-local"), "start", str(d), "2"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=120)
    assert start.returncode == 0, start.stdout
    conf = start.stdout.strip().split("=", 1)[1]
    yield dict(os.environ, SLURM_CONF=conf)
    subprocess.run([str(ROOT / "scripts" / "slurm-local"), "stop", str(d)], timeout=120)


@pytest.mark.parametrize("request_gpus", ["--gpus-per-task=1", "--gpus-per-node=2", "--gres=gpu:2"])
def test_slurm_gpu_requests_show_each_task_the_devices_the_trainer_expects(tmp_path, slurm, request_gpus):
    """What launch/slurm.sbatch's tasks see under each way of asking for GPUs, on a node with two
    stand-in GPUs; cuda_device_index() (tests/unit/distributed/launch_env_test.cpp) maps exactly
    these environments to a device. Per task: each sees one GPU of its own (device 0 to it). Per node
    or GRES: each sees both, and takes its local rank among them."""
    dump = tmp_path / "dump.sh"
    dump.write_text('#!/bin/sh\necho "task=$SLURM_LOCALID gpus_per_task=${SLURM_GPUS_PER_TASK-unset} '
                    'visible=${CUDA_VISIBLE_DEVICES-unset}"\n')
    dump.chmod(0o755)
    out = tmp_path / "job.out"
    # The script's default is one GPU per task; another request replaces it with --gpus-per-task=0.
    extra = [request_gpus] if "per-task" in request_gpus else ["--gpus-per-task=0", request_gpus]
    submit = subprocess.run(["sbatch", "--parsable", "--ntasks-per-node=2", "--cpus-per-task=1", *extra, "--time=5",
                             f"--output={out}", f"--chdir={tmp_path}", str(LAUNCH / "slurm.sbatch")],
                            env=dict(slurm, TRAINER=str(dump)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=60)
    assert submit.returncode == 0, submit.stdout
    deadline = time.time() + 120
    while time.time() < deadline and "[slurm] trainer exited" not in (out.read_text() if out.exists() else ""):
        time.sleep(0.5)
    log = out.read_text()
    tasks = dict(re.findall(r"task=(\d) (gpus_per_task=\S+ visible=\S+)", log))
    assert sorted(tasks) == ["0", "1"], log
    seen = {t: line.split("visible=")[1] for t, line in tasks.items()}
    if "per-task" in request_gpus:
        assert all("gpus_per_task=1" in line for line in tasks.values()), log
        assert all(len(v.split(",")) == 1 for v in seen.values()) and seen["0"] != seen["1"], log
    else:
        assert all("gpus_per_task=unset" in line for line in tasks.values()), log
        assert all(len(v.split(",")) == 2 for v in seen.values()), log


# Full only: the batch shell's SIGUSR1 (what --signal=B:USR1@120 sends) and a resumed job trained to
# its end; scancel-batch-TERM (fast) takes the same trap, requeue and resume.
@pytest.mark.full
def test_slurm_preemption_saves_requeues_and_resumes(tmp_path, slurm):
    out_file = tmp_path / "job.out"
    run_dir = tmp_path / "run"
    # The batch script asks for one GPU per task; this CPU node has none, so the test overrides
    # just that and the task size.
    submit = subprocess.run(
        ["sbatch", "--parsable", "--ntasks-per-node=2", "--cpus-per-task=1", "--gpus-per-task=0", "--time=10",
         f"--output={out_file}", f"--chdir={ROOT}", str(LAUNCH / "slurm.sbatch"),
         "--config", TINY, "--run-dir", str(run_dir), "--epochs", "6", "--save-every-steps", "50"],
        env=dict(slurm, TRAINER=TRAINER, RESUMABLE_HOME=str(ROOT)), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=60)
    assert submit.returncode == 0, submit.stdout
    job = submit.stdout.strip().split(";")[0]

    def output():
        return out_file.read_text() if out_file.exists() else ""

    def wait_for(text, timeout=180):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in output():
                return
            time.sleep(0.5)
        raise AssertionError(f"never saw {text!r}:\n{output()[-3000:]}")

    wait_for("step 100/")
    # The preemption notice Slurm sends before the time limit (--signal=B:USR1@120), now.
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], env=slurm, check=True)
    wait_for("requeueing job")
    wait_for("restart 1")
    wait_for("resumed from")
    wait_for("[slurm] trainer exited 0", timeout=300)
    log = output()
    assert "stopped by SIGUSR1" in log and "exit 75" in log
    ck = load(run_dir / "checkpoints" / "last.pt")
    assert ck["train_state"]["epoch"] == 6
    assert len(ck["history"]["resumed_at_step"]) == 1


class SlurmJob:
    """launch/slurm.sbatch (or `script`) on configs/tiny.json, 2 tasks of 1 CPU (the whole node), for
    1000 epochs: it only ends when it is stopped."""

    def __init__(self, slurm, tmp_path, sbatch_args=(), script=None, trainer_args=()):
        self.env, self.out, self.run_dir = slurm, tmp_path / "job.out", tmp_path / "run"
        submit = subprocess.run(
            ["sbatch", "--parsable", "--ntasks-per-node=2", "--cpus-per-task=1", "--gpus-per-task=0", *sbatch_args,
             f"--output={self.out}", f"--chdir={ROOT}", str(script or LAUNCH / "slurm.sbatch")] + ENDLESS +
            ["--run-dir", str(self.run_dir), *trainer_args],
            env=dict(slurm, TRAINER=TRAINER, RESUMABLE_HOME=str(ROOT)), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=60)
        assert submit.returncode == 0, submit.stdout
        self.id = submit.stdout.strip().split(";")[0]

    def output(self):
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def wait_for(self, text, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.output():
                return
            time.sleep(0.2)
        raise AssertionError(f"never saw {text!r}:\n{self.output()[-3000:]}")

    def info(self):
        """JobState and Restarts, as `scontrol show job` gives them."""
        text = subprocess.run(["scontrol", "show", "job", self.id], env=self.env, stdout=subprocess.PIPE, text=True).stdout
        return dict(re.findall(r"\b(JobState|Restarts)=(\S+)", text))

    def run(self, *command):
        subprocess.run([*command, self.id], env=self.env, check=True, timeout=60)

    def end(self):
        """Cancels the job until it is gone for good (a script that requeues on a cancel brings it back)."""
        for _ in range(120):
            if self.info().get("JobState") in ("CANCELLED", "COMPLETED", "FAILED", "TIMEOUT", "PREEMPTED", None):
                return
            subprocess.run(["scancel", self.id], env=self.env, timeout=60)
            time.sleep(1)
        raise AssertionError(f"job {self.id} never ended: {self.info()}")


@pytest.fixture
def slurm_job(slurm, tmp_path):
    """Submits SlurmJobs; every one is cancelled for good at the end, so the next test finds the node free."""
    jobs = []

    def submit(*sbatch_args, script=None, trainer_args=()):
        jobs.append(SlurmJob(slurm, tmp_path, sbatch_args, script, trainer_args))
        return jobs[-1]
    yield submit
    for job in jobs:
        job.end()


def test_slurm_retries_while_another_job_holds_the_run_directory(slurm_job, tmp_path):
    """Issue 41, hole 7: the previous job of a requeue chain still holds the run directory's lock when
    the next one starts: its ranks exit 69, and the batch script runs them again in the same
    allocation after LOCK_RETRY_DELAY_S, once the lock is free, instead of ending the chain."""
    holder = hold_run_directory_lock(tmp_path / "run", 120)  # SlurmJob's run directory
    try:
        job = slurm_job("--export=ALL,LOCK_RETRY_DELAY_S=3")
        job.wait_for("[slurm] the run directory is in use by another job: retry 1/10 in 3s", timeout=120)
        holder.terminate()  # the other job ends in order
        holder.wait()
        job.wait_for("step 20/", timeout=180)
    finally:
        holder.kill()
    log = job.output()
    assert "[slurm] trainer exited 69" in log, log[-3000:]
    assert f"is in use by another job (pid {holder.pid} on host" in log, log[-3000:]
    assert job.info() == {"JobState": "RUNNING", "Restarts": "0"}, job.info()


# Full only: the survivors' save itself is in test_peer_lost's fast cases; this adds Slurm's part
# (srun's 137 for the dead task, the survivors' 76 through the exit file, the requeue).
@pytest.mark.full
def test_slurm_requeues_after_a_lost_rank_and_the_survivors_save(slurm_job):
    """Issue 43: a task killed (kill -9, as the OOM killer would): srun reports 137 and ends the
    other task, which saves the last step it completed and exits 76 (through RESUMABLE_EXIT_FILE);
    the script requeues the job, which resumes from that step."""
    job = slurm_job()
    job.wait_for("step 40/")
    pids = rank_pids(job.run_dir)
    assert set(pids) == {0, 1}, pids
    os.kill(pids[1], signal.SIGKILL)
    job.wait_for("resumed from", timeout=120)
    log = job.output()
    assert "a rank was lost, and the survivors saved" in log and "[slurm] trainer exited 76" in log, log[-3000:]
    saved = re.search(r"the survivors saved step (\d+)", log)
    resumed = re.search(r"resumed from .*?: epoch \d+, step (\d+)", log)
    assert saved and resumed and int(resumed.group(1)) == int(saved.group(1)) >= 40, log[-3000:]
    assert "restart 1 on" in log and job.info()["Restarts"] == "1"
    assert not list(ROOT.glob(".resumable-exit-*"))


def assert_saved_requeued_resumed(job, timeout=120):
    """The ranks saved at one step and exited 75, the job came back (same id, restart 1) and resumed
    from that step. (The fixture's scancel then ends the resumed run.)"""
    job.wait_for("[slurm] trainer exited", timeout)
    log = job.output()
    assert "[slurm] trainer exited 75" in log, log[-3000:]
    step, signals = stop_steps(log)
    job.wait_for("resumed from")
    log = job.output()
    assert "restart 1 on" in log
    resumed = re.search(r"resumed from .*?: epoch \d+, step (\d+)", log)
    assert resumed and int(resumed.group(1)) == step, log[-3000:]
    assert job.info()["Restarts"] == "1"
    return step, signals


def assert_stays_cancelled(job, timeout=60):
    """After a plain scancel: the ranks saved and exited 75, and the job ended CANCELLED, not requeued."""
    job.wait_for("[slurm] trainer exited", timeout)
    deadline = time.time() + timeout
    while job.info().get("JobState") in ("RUNNING", "COMPLETING") and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(8)  # a requeued job would be running again by now (6 s here)
    log = job.output()
    info = job.info()
    assert info == {"JobState": "CANCELLED", "Restarts": "0"}, f"{info}\n{log[-3000:]}"
    assert "restart 1" not in log and "[slurm] trainer exited 75" in log
    step, signals = stop_steps(log)
    assert load(job.run_dir / "checkpoints" / "last.pt")["train_state"]["global_step"] == step
    return step, signals


# What the ranks report for each way of stopping a running job with a signal (docs/launching.md).
SLURM_SIGNAL_CASES = {
    # scancel -s: only the tasks get it.
    "scancel-signal-TERM": (["scancel", "--signal=TERM"], {"SIGTERM"}),
    "scancel-signal-USR1": (["scancel", "--signal=USR1"], {"SIGUSR1"}),
    # --batch: only the batch shell; --full: the batch shell's process group (srun is not in it).
    # The script turns the signal into SIGUSR1 to srun, never TERM (srun would SIGKILL the tasks).
    "scancel-batch-TERM": (["scancel", "--batch", "--signal=TERM"], {"SIGUSR1"}),
    "scancel-full-TERM": (["scancel", "--full", "--signal=TERM"], {"SIGUSR1"}),
    "scancel-batch-INT": (["scancel", "--batch", "--signal=INT"], {"SIGUSR1"}),
    "scancel-full-HUP": (["scancel", "--full", "--signal=HUP"], {"SIGUSR1"}),
    # Slurm's own requeue: SIGTERM to every process, SIGKILL KillWait (5 s) later; Slurm requeues.
    "scontrol-requeue": (["scontrol", "requeue"], {"SIGTERM", "SIGUSR1"}),
}


# Fast scope: scancel-batch-TERM (the batch shell's trap, SIGUSR1 to srun, the script's own requeue,
# the resume at the saved step); with test_slurm_scancel_saves_and_does_not_requeue (SIGTERM to
# every process) both ways a signal reaches the ranks. Full only: the other signals to the batch
# shell (same trap), a signal to the tasks alone (the script learns of the stop from exit 75 only)
# and scontrol requeue (Slurm requeues the job itself).
@pytest.mark.parametrize("case", [c if c == "scancel-batch-TERM" else pytest.param(c, marks=pytest.mark.full)
                                  for c in SLURM_SIGNAL_CASES])
def test_slurm_stop_signal_saves_requeues_and_resumes(slurm_job, case):
    command, signals = SLURM_SIGNAL_CASES[case]
    job = slurm_job()
    job.wait_for("step 20/")
    job.run(*command)
    _, seen = assert_saved_requeued_resumed(job)
    assert seen <= signals, seen


def test_slurm_scancel_saves_and_does_not_requeue(slurm_job):
    """A user's plain `scancel JOB`: SIGTERM to every process, the ranks save within KillWait, and the
    job ends CANCELLED for good (the old script requeued the job it was asked to cancel)."""
    job = slurm_job()
    job.wait_for("step 20/")
    job.run("scancel")
    _, seen = assert_stays_cancelled(job)
    assert seen <= {"SIGTERM", "SIGUSR1"}
    assert "was cancelled" in job.output()


@pytest.mark.full  # Slurm's own timer sending the warning (a 1-minute job); the trap is scancel-batch-TERM's
def test_slurm_time_limit_warning_saves_requeues_and_resumes(slurm_job):
    """--signal=B:USR1@20 with a 1-minute limit: the warning reaches the batch shell 50-20 s before
    the limit (the controller looks every 30 s and sends it up to 30 s early; @20 keeps it after
    the trainer's start); the job saves and requeues itself."""
    # --deadline none: the trainer's own deadline-aware save would otherwise come first (below).
    job = slurm_job("--time=1", "--signal=B:USR1@20", trainer_args=["--deadline", "none"])
    _, seen = assert_saved_requeued_resumed(job, timeout=100)
    assert seen == {"SIGUSR1"}
    assert "DUE TO TIME LIMIT" not in job.output()


def script_without_signal(tmp_path):
    """launch/slurm.sbatch without its #SBATCH --signal line: no warning before the time limit."""
    script = tmp_path / "no-warning.sbatch"
    text = (LAUNCH / "slurm.sbatch").read_text()
    assert "#SBATCH --signal=" in text
    script.write_text(re.sub(r"(?m)^#SBATCH --signal=.*\n", "", text))
    return script


@pytest.mark.full  # the time limit itself (TIMEOUT, then the script's requeue); 90 s of waiting for it
def test_slurm_time_limit_without_warning_saves_requeues_and_resumes(slurm_job, tmp_path):
    """No --signal, and the trainer's own deadline off: at the limit (up to 30 s late)
    every process gets SIGTERM and SIGKILL KillWait later; the ranks save in between and the script
    requeues the TIMEOUT job."""
    job = slurm_job("--time=1", script=script_without_signal(tmp_path), trainer_args=["--deadline", "none"])
    job.wait_for("DUE TO TIME LIMIT", timeout=150)
    _, seen = assert_saved_requeued_resumed(job, timeout=30)
    assert seen <= {"SIGTERM", "SIGUSR1"}


@pytest.mark.full  # Slurm's PreemptMode=REQUEUE: SIGTERM to every process, as the kept plain scancel
def test_slurm_preemption_by_a_higher_tier_partition_saves_and_resumes(slurm_job, slurm, tmp_path):
    """A job of the `urgent` partition (PriorityTier 2, PreemptMode=REQUEUE) needs the node: Slurm
    requeues ours (SIGTERM to every process, SIGKILL KillWait later); the ranks save; after the urgent
    job, ours resumes."""
    job = slurm_job()
    job.wait_for("step 20/")
    urgent = subprocess.run(["sbatch", "--parsable", "--partition=urgent", "--ntasks=1", f"--output={tmp_path / 'urgent.out'}",
                             "--wrap", "sleep 1"], env=slurm, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=60)
    assert urgent.returncode == 0, urgent.stdout
    _, seen = assert_saved_requeued_resumed(job)
    assert seen <= {"SIGTERM", "SIGUSR1"}
    assert "DUE TO PREEMPTION" in job.output()


def assert_deadline_save_requeued_and_verified(job, timeout):
    """The trainer saved at the deadline it read from Slurm, before any signal or the time limit,
    exited 75; the script requeued the job; the requeued run resumed at that step and its resume
    proof passed. Returns the deadline line."""
    job.wait_for("[slurm] trainer exited", timeout)
    log = job.output()
    assert "[slurm] trainer exited 75" in log, log[-3000:]
    first = log.split("[slurm] trainer exited 75")[0]
    deadline = re.search(r"warning: deadline: (\d+)s left until \S+ \(Slurm job \d+ \(squeue\)\), less than .*: "
                         r"checkpoint saved at step (\d+), exit 75", first)
    assert deadline, first[-3000:]
    assert "stopped by SIG" not in first and "DUE TO TIME LIMIT" not in first and "received" not in first, first[-3000:]
    job.wait_for("resume verified", timeout=90)
    log = job.output()
    assert "requeueing job" in log and "restart 1 on" in log
    resumed = re.search(r"resumed from .*?: epoch \d+, step (\d+)", log)
    assert resumed and resumed.group(1) == deadline.group(2), log[-3000:]
    assert "resume verified: next 4 batches identical (2 ranks)" in log
    return deadline


@pytest.mark.full  # the deadline read from squeue (unit tests: deadline_test, the stand-in squeue)
def test_slurm_deadline_saves_requeues_and_resumes_without_any_signal(slurm_job, tmp_path):
    """--time=1 and no --signal: the trainer reads the job's end from squeue and, when two saves, a
    step and the margin no longer fit, saves and exits 75 by itself; nothing is signalled. (A
    10-s margin: below a quarter of the minute, so it is not capped.)"""
    job = slurm_job("--time=1", script=script_without_signal(tmp_path), trainer_args=["--deadline-margin-seconds", "10"])
    job.wait_for("(Slurm job", timeout=60)
    assert re.search(r"info: deadline: \S+ \(Slurm job \d+ \(squeue\)\), read every 60s: saves and exits 75 when "
                     r"less than 2 saves \+ a step \+ 10s margin are left", job.output()), job.output()[-3000:]
    line = assert_deadline_save_requeued_and_verified(job, timeout=90)
    # Saved at the first step that found less than the logged need left (2 saves + a step + the
    # margin, as measured under whatever else this machine runs), not before, never too late.
    need = re.search(r"less than 2 x ([\d.]+)s to save \+ ([\d.]+)s for a step.* \+ (\d+)s margin", line.group(0))
    assert need, line.group(0)
    limit = 2 * float(need.group(1)) + float(need.group(2)) + float(need.group(3))
    assert 9 <= int(line.group(1)) <= limit + 0.5, line.group(0)


@pytest.mark.full  # a limit moved while the job runs (unit tests: deadline_test)
def test_slurm_deadline_follows_a_time_limit_moved_by_scontrol_update(slurm_job, tmp_path):
    """The limit is cut from 10 minutes to 1 while the job runs: the trainer reads the new end time
    (every 2 s here) and saves before it."""
    job = slurm_job("--time=10", script=script_without_signal(tmp_path),
                    trainer_args=["--deadline-margin-seconds", "10", "--deadline-refresh-seconds", "2"])
    job.wait_for("step 20/", timeout=60)
    subprocess.run(["scontrol", "update", f"JobId={job.id}", "TimeLimit=1"], env=job.env, check=True, timeout=60)
    line = assert_deadline_save_requeued_and_verified(job, timeout=90)
    assert int(line.group(1)) <= 11, line.group(0)
