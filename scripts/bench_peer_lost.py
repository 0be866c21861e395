"""What a lost rank costs: for each scenario, a 3-rank run of configs/tiny.json under a launcher that
restarts it, one rank killed with SIGKILL mid-run, then: the steps lost (the last step every
survivor had completed minus the step the restarted run resumed from; the goal is 0), the seconds
from the kill to training again, and for comparison the steps periodic saves alone would have lost
(every --save-every-steps P steps). Run by scripts/bench-peer-lost."""
import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINER = os.environ.get("TRAINER", str(ROOT / "build" / "trainer"))
TINY = str(ROOT / "configs" / "tiny.json")
TORCHRUN = str(ROOT / ".venv" / "bin" / "torchrun")


def rank_pids(run_dir):
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
        rank = env.get(b"OMPI_COMM_WORLD_RANK", env.get(b"RANK"))
        if rank is not None:
            pids[int(rank)] = int(d.name)
    return pids


def scenario(name, launcher, victim, kill_at, period, run_dir):
    flags = ["--config", TINY, "--run-dir", str(run_dir), "--epochs", "50", "--max-steps", str(kill_at + 100),
             "--save-every-steps", str(period), "--save-every-minutes", "0"]
    if launcher == "mpirun":
        cmd = [str(ROOT / "launch" / "run-with-restarts.sh"), "1", str(ROOT / "launch" / "mpirun-1node.sh"), "3"] + flags
    else:
        cmd = [TORCHRUN, "--nproc-per-node", "3", "--max-restarts", "1", "--no-python", TRAINER] + flags
    env = dict(os.environ, RESTART_DELAY_S="0", OMP_WAIT_POLICY="PASSIVE")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                         start_new_session=True, stdin=subprocess.DEVNULL)
    log, killed_at = [], None
    for line in p.stdout:
        log.append(line)
        if killed_at is None and f"step {kill_at}/" in line:
            pids = rank_pids(run_dir)
            os.kill(pids[victim], signal.SIGKILL)
            killed_at = time.time()
        elif killed_at is not None and "resumed from" in line:
            back = time.time() - killed_at
            break
    else:
        raise SystemExit(f"{name}: the run ended without resuming:\n{''.join(log[-40:])}")
    p.stdout.read()
    p.wait()
    text = "".join(log)
    completed = max(int(s) for s in re.findall(r"this rank's state is step (\d+), whole", text))
    resumed = int(re.search(r"resumed from .*?: epoch \d+, step (\d+)", text).group(1))
    periodic = completed - (completed // period) * period
    return completed, completed - resumed, back, periodic


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kill-at", type=int, default=200, help="kill when this step's progress line appears")
    ap.add_argument("--period", type=int, default=150, help="--save-every-steps of the runs (the comparison)")
    a = ap.parse_args()
    print(f"tiny, 3 ranks, SIGKILL at the step-{a.kill_at} progress line, periodic saves every {a.period} steps")
    print(f"{'scenario':44} {'completed':>9} {'lost':>5} {'periodic alone':>14} {'kill->training':>15}")
    for name, launcher, victim in [("mpirun + run-with-restarts, rank 1 killed", "mpirun", 1),
                                   ("mpirun + run-with-restarts, rank 0 killed", "mpirun", 0),
                                   ("torchrun --max-restarts 1, rank 1 killed", "torchrun", 1),
                                   ("torchrun --max-restarts 1, rank 0 killed", "torchrun", 0)]:
        with tempfile.TemporaryDirectory() as d:
            completed, lost, back, periodic = scenario(name, launcher, victim, a.kill_at, a.period, Path(d))
        print(f"{name:44} {completed:9d} {lost:5d} {periodic:14d} {back:14.1f}s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
