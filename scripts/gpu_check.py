"""The checks of scripts/gpu-check, run against a built trainer on one GPU (or, with --cpu-dry-run,
on the CPU with tiny sizes, to test this script on a machine without a GPU).

Order: checks 1-5 first (small runs of configs/tiny.json, two at a time; on the GPU machine the
build there runs beside them, on the CPU, while they use the trainer built here), then the
throughput bench alone, then the quality run of configs/gpu.json alone, then its test
evaluations. The bench and the quality run have the GPU to themselves; they use the trainer
built there when that build has passed by then, else it goes on beside them at the lowest CPU
priority and check 0 is recorded when it ends.
Every run's output is kept under /tmp/gpu-check/logs; each check ends in one line
"gpu-check: N NAME: PASS|FAIL ...", and the lines are repeated together at the end.
"""
import argparse
import concurrent.futures
import glob
import json
import os
import re
import shutil
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

WORK = "/tmp/gpu-check"
_print_lock = threading.Lock()


def say(text):
    with _print_lock:
        print(f"gpu-check: {text}", flush=True)


class Runner:
    def __init__(self, trainer, python, device, dry, seconds, quality_flags=(), both_directions=True):
        self.trainer = os.path.abspath(trainer)
        self.quality_flags = list(quality_flags)  # trainer flags added to check 7's config
        self.both_directions = both_directions  # an ensemble's every second member reads right to left
        self.python = python
        self.device = device
        self.dry = dry
        self.deadline = time.monotonic() + seconds
        self.t0 = time.monotonic()

    def left(self):
        return self.deadline - time.monotonic()

    def run(self, name, argv, env=None, timeout=300, trainer=True):
        """Runs trainer (or any command), logs to WORK/logs/NAME.log; returns (rc, output, seconds)."""
        cmd = ([self.trainer] if trainer else []) + [str(a) for a in argv]
        e = {k: v for k, v in os.environ.items()
             if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
        e.update(env or {})
        start = time.monotonic()
        try:
            p = subprocess.run(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=max(5, min(timeout, self.left())))
            rc, out = p.returncode, p.stdout
        except subprocess.TimeoutExpired as t:
            rc, out = 124, (t.stdout.decode() if isinstance(t.stdout, bytes) else (t.stdout or "")) + "\n[timed out]"
        seconds = time.monotonic() - start
        with open(f"{WORK}/logs/{name}.log", "w") as f:
            f.write(f"$ {' '.join(cmd)}\n# exit {rc} after {seconds:.1f}s\n{out}")
        return rc, out, seconds

    def recipe(self, config):
        """Check 7's recipe as its lines name it: the config and the flags added to it."""
        return " ".join([config, *self.quality_flags])

    def quality_args(self):
        """Check 7's flags: the dry run's stand-in for gpu.json's full data (few words, a small
        evaluation), then the recipe's own (--quality-flags)."""
        return (["--max-train-words", "3000", "--max-eval-words", "200"] if self.dry else []) + self.quality_flags

    def tiny(self, run_dir, *extra):
        return ["--config", "configs/tiny.json", "--device", self.device, "--run-dir", f"{WORK}/{run_dir}", *extra]


def load(path):
    import torch
    return torch.load(path, map_location="cpu", weights_only=True)


def compare_runs(a_path, b_path):
    """Model parameters of two checkpoints: identical, or the largest difference."""
    import torch
    a, b = load(a_path), load(b_path)
    worst, differing = 0.0, 0
    for k in a["model"]:
        x, y = a["model"][k], b["model"][k]
        if not torch.equal(x, y):
            differing += 1
            worst = max(worst, (x.double() - y.double()).abs().max().item())
    same_loss = torch.equal(a["history"]["train_loss"], b["history"]["train_loss"])
    return {"identical": differing == 0, "tensors": len(a["model"]), "differing": differing, "max_abs": worst,
            "same_loss_history": same_loss, "final_loss": (a["history"]["train_loss"][-1].item(),
                                                          b["history"]["train_loss"][-1].item()),
            "scaler": (a.get("loss_scaler"), b.get("loss_scaler")), "step": a["train_state"]["global_step"]}


# --------------------------------------------------------------------------------------------
# The checks. Each returns (ok, text).

def check_cuda_single(r):
    rc, out, sec = r.run("1-train", r.tiny("c1", "--resume", "never"))
    on_device = f"on {'cuda:0' if r.device == 'cuda' else 'cpu'}" in out
    files = sorted(glob.glob(f"{WORK}/c1/checkpoints/*.pt"))
    rc2, out2, _ = r.run("1-verify", ["ckpt", "verify", *files])
    steps = re.findall(r"done: step (\d+)", out)
    verified = len(re.findall(r"^OK ", out2, re.M))
    ok = rc == 0 and rc2 == 0 and on_device and verified >= 2
    return ok, (f"tiny trained to step {steps[-1] if steps else '?'} on {r.device} in {sec:.1f}s (exit {rc}), "
                f"ckpt verify: {verified} file(s) OK (exit {rc2})")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_nccl(r):
    rc, out, sec = r.run("2-torchrun", [r.python, "-m", "torch.distributed.run", "--nproc-per-node", "1",
                                         "--master-port", str(free_port()), "--no-python", r.trainer,
                                         *r.tiny("c2", "--max-steps", "30", "--timeout-seconds", "30")], trainer=False)
    backend = "NCCL (CUDA)" if r.device == "cuda" else "gloo"
    used = "process group gloo (CPU) + NCCL (CUDA)" in out if r.device == "cuda" else "process group gloo" in out
    # --timeout-seconds: rank 0 of 2 whose partner never comes must give up after the timeout, with a
    # message, instead of hanging.
    limit = 10
    rc2, out2, sec2 = r.run("2-timeout", r.tiny("c2t", "--timeout-seconds", limit),
                            env={"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                                 "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
                                 "GLOO_SOCKET_IFNAME": "lo"}, timeout=120)
    last = [l for l in out2.splitlines() if l.strip()][-1:] or ["(no output)"]
    timed_out = rc2 != 0 and limit - 1 <= sec2 <= limit + 40
    ok = rc == 0 and used and timed_out
    return ok, (f"torchrun, world size 1, {backend}: 30 steps, exit {rc} ({sec:.1f}s); --timeout-seconds {limit} with a "
                f"missing rank: exit {rc2} after {sec2:.1f}s: {last[0][-160:]}")


def amp_case(r, amp, debug):
    tag = f"{amp}{'-debug' if debug else ''}"
    # One epoch of tiny (67 steps), stopped at 30; with --debug, whose anomaly detection makes
    # steps slow, 20 steps stopped at 10.
    flags = ["--amp", amp, "--epochs", "1"] + (["--debug", "--max-steps", "20"] if debug else [])
    cut = "10" if debug else "30"
    # The uninterrupted run beside the interrupted one: on an H200 the three runs one after the
    # other made this check the longest of 1-5 (140 s), and the GPU had room.
    with concurrent.futures.ThreadPoolExecutor(1) as beside:
        full = beside.submit(r.run, f"3-{tag}-full", r.tiny(f"c3-{tag}-full", *flags))
        rc2, _, _ = r.run(f"3-{tag}-cut", r.tiny(f"c3-{tag}-cut", *flags, "--max-steps", cut))
        rc3, out3, _ = r.run(f"3-{tag}-resume", r.tiny(f"c3-{tag}-cut", *flags))
        rc1, out1, _ = full.result()
    if rc1 or rc2 or rc3:
        return False, f"{tag}: exit {rc1}/{rc2}/{rc3}"
    c = compare_runs(f"{WORK}/c3-{tag}-full/checkpoints/last.pt", f"{WORK}/c3-{tag}-cut/checkpoints/last.pt")
    scaler = ""
    if amp == "fp16":
        sa, sb = c["scaler"]
        scaler = f", loss scale {sa.get('scale') if sa else '?'} vs {sb.get('scale') if sb else '?'}"
    if c["identical"]:
        what = "bit-identical"
    else:
        what = (f"{c['differing']}/{c['tensors']} tensors differ, max |dw| {c['max_abs']:.2e}, final loss "
                f"{c['final_loss'][0]:.5f} vs {c['final_loss'][1]:.5f}")
    warned = len(re.findall(r"does not have a deterministic implementation", out1))
    return True, (f"{tag}: stop at {cut}, resume to {c['step']}: {what}{scaler}"
                  + (f" ({warned} nondeterministic-op warning(s))" if debug and warned else "")), c["identical"]


def check_amp(r, pool):
    cases = [(amp, debug) for debug in (False, True) for amp in ("bf16", "fp16")]
    futures = [pool.submit(amp_case, r, amp, debug) for amp, debug in cases]
    results = [f.result() for f in futures]
    ok = all(x[0] for x in results)
    # With --debug (deterministic algorithms) the resumed run must equal the uninterrupted one.
    deterministic_ok = all(len(x) > 2 and x[2] for x, (_, debug) in zip(results, cases) if debug)
    return ok and deterministic_ok, "; ".join(x[1] for x in results)


def check_cross_device(r):
    rc1, out1, _ = r.run("4-gpu", r.tiny("c4-gpu", "--max-steps", "40"))
    saved = re.findall(r"step 40, .*?weights (xxh3:[0-9a-f]+)", out1)
    rc2, out2, _ = r.run("4-cpu", ["--config", "configs/tiny.json", "--device", "cpu", "--run-dir", f"{WORK}/c4-cpu",
                                   "--resume", f"{WORK}/c4-gpu/checkpoints/last.pt", "--max-steps", "80"])
    loaded = re.findall(r"resumed from .*?weights (xxh3:[0-9a-f]+) on (\S+)", out2)
    rc3, out3, _ = r.run("4-gpu-again", r.tiny("c4-gpu2", "--resume", f"{WORK}/c4-cpu/checkpoints/last.pt"))
    again = re.findall(r"resumed from .*?epoch \d+, step (\d+)", out3)
    done = re.findall(r"done: step (\d+)", out3)
    rng_note = "holds no CUDA RNG state" in out3
    equal = bool(saved) and bool(loaded) and saved[-1] == loaded[-1][0]
    ok = rc1 == 0 and rc2 == 0 and rc3 == 0 and equal and (rng_note or r.device != "cuda")
    return ok, (f"{r.device} step 40 weights {saved[-1] if saved else '?'}; the CPU leg loaded "
                f"{loaded[-1][0] if loaded else '?'} on {loaded[-1][1] if loaded else '?'} "
                f"({'equal' if equal else 'NOT equal'}), trained to 80; {r.device} again from step "
                f"{again[-1] if again else '?'} to {done[-1] if done else '?'}"
                f"{', fresh CUDA RNG stream noted' if rng_note else ''} (exits {rc1}/{rc2}/{rc3})")


def check_debug(r):
    # 600 words: an epoch of about 10 steps, so that its validation (on at most 256 words) shows.
    rc, out, sec = r.run("5-debug", r.tiny("c5", "--debug", "--max-train-words", "600"))
    mode = "debug mode: deterministic algorithms, autograd anomaly detection" in out
    words = re.findall(r"validation: .*?\((\d+) words\)", out)
    ok = rc == 0 and mode
    return ok, (f"one process, no launcher, --debug: exit {rc} in {sec:.1f}s, mode logged: {mode}, "
                f"validation on {words[-1] if words else '-'} words")


def bench(r):
    # 120 steps, one run of each side, and not the project's own recipe: about 50 s. Two runs of
    # each and one of the own recipe took 117 s on an H200 (ratios 1.26 there, 1.10 on an H100),
    # and those 67 s are worth more to the quality run, which otherwise gets under 4 of its 5
    # minutes in one call.
    argv = ["scripts/bench-ddp", "--gpu"] + (["--steps", "12", "--warmup", "4", "--runs", "1"] if r.dry else
                                             ["--steps", "120", "--warmup", "20", "--runs", "1", "--own-runs", "0"])
    env = {"TRAINER": r.trainer, "PY": r.python}
    if r.dry:
        env["BENCH_DEVICE"] = "cpu"
    rc, out, sec = r.run("6-bench", argv, env=env, timeout=240, trainer=False)
    last = [l for l in out.splitlines() if l.startswith("bench-ddp:")]
    for line in last[:-1]:
        say(f"  {line}")
    ratio = re.search(r"C\+\+/Python = ([0-9.]+)", last[-1]) if last else None
    return rc == 0 and ratio is not None, f"{last[-1] if last else 'no result'} ({sec:.0f}s)"


# --------------------------------------------------------------------------------------------
# Quality: configs/gpu.json trained on the one GPU for at most 5 minutes (its epochs fitted to the
# time by the trainer itself, --time-budget-minutes), then the test split greedy and with beam search.
# With --ensemble K, K models (seeds 1234, 1235, ...) train at once on the one GPU within the same
# 5 minutes, and the test split is decoded by all of them together (trainer --eval --ensemble).
# Every second member reads the phonemes right to left (target_order), so the two directions
# rerank each other's hypotheses (decoding.h), unless --same-direction.

# gpu.json alone: its batches of 4,096 kept an H100 58% busy (at 2,048 an H200 was 35% busy), so a
# second recipe beside it on the one GPU slows it down; an ensemble's members share the GPU's time.
QUALITY_DIR = f"{WORK}/q"


def member_flags(r, i):
    """The flags that make member i what it is: every second one reads right to left."""
    return ["--target-order", "right_to_left"] if r.both_directions and i % 2 == 1 else []


def member_dir(i):
    return QUALITY_DIR if i == 0 else f"{QUALITY_DIR}{i + 1}"


def member_log(i):
    return f"{WORK}/logs/7-train{'' if i == 0 else i + 1}.log"


def profile_summary(path, steps):
    """Kernels and CPU ops per step, and how busy the GPU was, from a Kineto Chrome trace; the
    most frequent CPU ops and kernels go to logs/7-profile-top.txt (the trace itself is large)."""
    events = [e for e in json.load(open(path))["traceEvents"] if e.get("ph") == "X"]
    kernels = [e for e in events if e.get("cat") == "kernel"]
    ops = [e for e in events if e.get("cat") == "cpu_op"]
    start = min(e["ts"] for e in events)
    wall = max(e["ts"] + e.get("dur", 0) for e in events) - start
    busy = sum(e.get("dur", 0) for e in kernels)
    with open(f"{WORK}/logs/7-profile-top.txt", "w") as f:
        for title, group in (("CPU ops", ops), ("kernels", kernels)):
            per = {}
            for e in group:
                n, d = per.get(e["name"], (0, 0))
                per[e["name"]] = (n + 1, d + e.get("dur", 0))
            f.write(f"{title}: per step: count, total us, name\n")
            for name, (n, d) in sorted(per.items(), key=lambda x: -x[1][0])[:60]:
                f.write(f"{n / steps:8.1f} {d / steps:10.1f}  {name[:160]}\n")
    return (f"{len(kernels) / steps:.0f} kernels and {len(ops) / steps:.0f} CPU op events per step, "
            f"{wall / steps / 1000:.1f} ms per step, GPU busy {100 * busy / wall if wall else 0:.0f}% of it")


def quality_train(r, config, budget_minutes, cap_seconds, profiled, members):
    """Trains gpu.json within the budget, `members` models at once (SIGTERM at the cap, should a
    fit miss: the trainer saves and exits 75, still within it). Returns (exit codes, minutes from
    start to the last end, whether the cap stopped any)."""
    # The members share the machine's cores: each launches its kernels from one thread, and
    # ATen's CPU pools would otherwise oversubscribe them.
    threads = max(1, (os.cpu_count() or 1) // members)
    procs, logs = [], []
    started = time.monotonic()
    for i in range(members):
        argv = [r.trainer, "--config", config, "--run-dir", member_dir(i),
                "--time-budget-minutes", f"{budget_minutes:.3f}", *r.quality_args(), *member_flags(r, i)]
        if members > 1:
            argv += ["--seed", str(1234 + i), "--threads", str(threads)]
        env = dict(os.environ)
        if i == 0:
            env["RESUMABLE_PROFILE_STEPS"] = f"{profiled[0]}:{profiled[1]}:{WORK}/profile.json"
        log = open(member_log(i), "w")
        log.write(f"$ {' '.join(argv)}\n")
        log.flush()
        logs.append(log)
        procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env))
    stopped = False
    try:
        for proc in procs:
            try:
                proc.wait(timeout=max(1, cap_seconds - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
                proc.wait()
                stopped = True
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for log in logs:
            log.close()
    return [proc.returncode for proc in procs], (time.monotonic() - started) / 60, stopped


def training_summary(i):
    """One member's run from its log and metrics: steps, epochs, fits, samples/s, best validation."""
    log = open(member_log(i)).read()
    done = re.findall(r"(?:done|stopped by \S+) at step (\d+)|done: step (\d+), epoch (\d+)", log)
    fits = re.findall(r"time budget: .*?: (\d+) epochs \(were", log)
    lines = list(map(json.loads, open(f"{member_dir(i)}/metrics.jsonl")))
    rows = [x for x in lines if "loss" in x]
    vals = [x for x in lines if "val_wer" in x]
    step = rows[-1]["step"] if rows else 0
    epochs = done[-1][2] if done and done[-1][2] else f"{rows[-1]['epoch'] if rows else 0}+"
    # Samples over step time (saves and validations excluded), past the first tenth of the steps.
    steady = [x["samples_per_s"] for x in rows[len(rows) // 10:] if x["samples_per_s"] > 0]
    rate = len(steady) / sum(1 / x for x in steady) if steady else 0.0
    fitted = f", fitted {len(fits)} time(s), last to {fits[-1]}" if fits else ", never fitted"
    best = f", best val WER {100 * min(x['val_wer'] for x in vals):.2f}%" if vals else ""
    timed = re.search(r"attention auto: (\w+) \(([0-9.]+) ms\) over (\w+) \(([0-9.]+) ms[;)]", log)
    attention = f", attention {timed[1]} ({timed[2]} ms, {timed[3]} {timed[4]} ms)" if timed else ""
    if not timed:  # set by the config or a flag: the last one given wins, as in the trainer
        argv = log.splitlines()[0].split()
        flags = [argv[j + 1] for j, x in enumerate(argv[:-1]) if x == "--attention"]
        config = argv[argv.index("--config") + 1] if "--config" in argv else None
        kernel = flags[-1] if flags else json.load(open(config)).get("attention", "auto") if config else "auto"
        attention = f", attention {kernel} (set)" if kernel != "auto" else ""
    return f"{step} steps, {epochs} epoch(s){fitted}, {rate:.0f} samples/s{attention}{best}"


def evaluate_test_split(r, config, name, beam, run_dir, ensemble=(), flags=()):
    """The test split of a run's best checkpoint (with others as an ensemble): (exit, match)."""
    argv = ["--config", config, "--run-dir", run_dir, "--eval", "--beam-size", beam, *r.quality_args(), *flags]
    if ensemble:
        argv += ["--ensemble", ",".join(ensemble)]
    erc, eout, _ = r.run(name, argv, timeout=180)
    return erc, re.search(r"test: WER ([0-9.]+)%, PER ([0-9.]+)%.*?on (\d+) words \(beam (\d+), ([0-9.]+)s\)", eout)


def best_checkpoint(run_dir):
    best = f"{run_dir}/checkpoints/best.pt"
    return best if os.path.exists(best) else f"{run_dir}/checkpoints/last.pt"


def quality_report(r, config, members, rcs, minutes, stopped):
    """Evaluates the test split, greedy and beam 5 (of the ensemble, and of each member alone at
    beam 5), all at once; returns (ok, met, text)."""
    others = [best_checkpoint(member_dir(i)) for i in range(1, members)]
    label = "test" if members == 1 else "ensemble test"
    jobs = [(label, f"7-test-beam{beam}", beam, QUALITY_DIR, others, ()) for beam in (1, 5)]
    if members > 1:
        jobs += [(f"member {i + 1} alone, test", f"7-test-member{i + 1}-beam5", 5, member_dir(i), (),
                  member_flags(r, i)) for i in range(members)]
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        evals = list(pool.map(lambda job: evaluate_test_split(r, config, *job[1:]), jobs))
    what = "" if members == 1 else f" (ensemble of {members} trained at once)"
    text = [f"{r.recipe(config)}{what}: in {minutes:.2f} min{' (stopped by SIGTERM at the cap)' if stopped else ''}, "
            f"exit {'/'.join(map(str, rcs))}"]
    if members == 1:
        text[0] = text[0].replace(": in", f": {training_summary(0)}, in", 1)
    else:
        text += [f"member {i + 1}{' (right to left)' if member_flags(r, i) else ''}: {training_summary(i)}"
                 for i in range(members)]
    ok = all(rc in (0, 75) for rc in rcs)
    for (who, _, beam, _, _, _), (erc, m) in zip(jobs, evals):
        if m:
            text.append(f"{who} beam {beam}: WER {m.group(1)}%, PER {m.group(2)}% on {m.group(3)} words ({m.group(5)}s)")
        else:
            text.append(f"{who} beam {beam}: exit {erc}, no result")
            ok = False
    met = ok and any(m and float(m.group(1)) <= 22.0 and float(m.group(2)) <= 5.0 for _, m in evals[:2])
    return ok, met, "; ".join(text)


def quality(r, config, members):
    """Check 7: gpu.json trained within the time left (at most 5 minutes), evaluated."""
    # At most 5 minutes from the start of the process, and 45 s left for the test evaluations
    # (an ensemble's, and its members' alone, run at once).
    cap = 60 if r.dry else min(300, r.left() - 45 - 5 * (members - 1))
    # The trainer's budget counts from its own start and covers its last validation and save; 15 s
    # are left for what comes before (CUDA, NCCL) and after (the exit).
    budget = (cap - 15) / 60
    # Ten steps profiled where the run is steady (on an H200 the first 240 steps still met new
    # sequence shapes): about a second lost to the profiler, for where a step's time goes.
    profiled = (31, 35) if r.dry else (341, 350)
    what = "" if members == 1 else f", {members} models at once"
    say(f"7 quality: {r.recipe(config)}{what}: time budget {budget:.2f} min, cap {cap:.0f}s")
    ok, met, text = quality_report(r, config, members, *quality_train(r, config, budget, cap, profiled, members))
    try:
        say(f"7 quality: profile of steps {profiled[0]}..{profiled[1]}{' (member 1)' if members > 1 else ''}: "
            f"{profile_summary(f'{WORK}/profile.json', profiled[1] - profiled[0] + 1)}")
    except Exception as e:  # a diagnostic: never fails the check
        say(f"7 quality: no profile ({type(e).__name__}: {e})")
    return ok and (met or r.dry), f"{text}; target WER <= 22%, PER <= 5.0%: {'met' if met else 'NOT met'}"


def finish_build(r, status, pid, built, switch):
    """Check 0, once the build beside the checks has ended, or stopped if it is still running
    (r.left() says when that must be). Returns (ok, text); with `switch`, on success the checks
    after this one use the trainer built there."""
    while not os.path.exists(status) and r.left() > 5:
        time.sleep(1)
    for name in ("cmake.log", "build.log", ".ninja_log"):  # what took the time, for the logs
        if os.path.exists(f"build-gpu/{name}"):
            shutil.copy(f"build-gpu/{name}", f"{WORK}/logs/0-build-{name.lstrip('.')}")
    if not os.path.exists(status):
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        return False, f"still building after {time.monotonic() - r.t0:.0f}s: stopped at the end of the time"
    rc, seconds = open(status).read().split()
    log = open("build-gpu/cmake.log").read() if os.path.exists("build-gpu/cmake.log") else ""
    nccl = re.search(r"NCCL process group enabled.*", log)
    if rc != "0":
        return False, f"exit {rc} after {seconds}s (build-gpu/build.log); the checks use the trainer built on the dev machine"
    if switch:
        r.trainer = os.path.abspath(built)
        used = "the bench and the quality run use it"
    else:
        used = ("it ran on beside checks 6-7 at the lowest CPU priority, which used the trainer built on the dev "
                "machine from the same sources")
    return True, (f"trainer built in {seconds}s against this machine's torch, beside checks 1-5 "
                  f"({nccl.group(0) if nccl else 'no NCCL'}); {used}")


def checks_before_quality(r, a, record):
    """Checks 1-5, the build beside them (check 0 now, or later: returns whether it is pending)
    and the bench (6)."""
    # 1-5 first: small, two at a time, and only correctness is asked of them.
    with concurrent.futures.ThreadPoolExecutor(2) as pool, concurrent.futures.ThreadPoolExecutor(2) as inner:
        jobs = {1: ("cuda single process", check_cuda_single, r), 2: ("nccl", check_nccl, r),
                3: ("amp resume", check_amp, r, inner), 4: ("gpu-cpu-gpu", check_cross_device, r),
                5: ("debug mode", check_debug, r)}
        futures = [pool.submit(record, n, *job) for n, job in jobs.items()]
        for f in futures:
            f.result()
    build_pending = False
    if a.build_status and os.path.exists(a.build_status):
        record(0, "build", finish_build, r, a.build_status, a.build_pid, a.built, True)
    elif a.build_status:
        # On an H100 machine the build was still running after 154 s, when checks 1-5 had ended;
        # waiting for it would take the quality run's time. It goes on at the lowest priority (the
        # runs below launch kernels from one thread each; there are 16 cores), and checks 6-7 use
        # the trainer built here from the very same sources.
        build_pending = True
        os.setpriority(os.PRIO_PGRP, a.build_pid, 19)
        say(f"0 build: still running after {time.monotonic() - r.t0:.0f}s; it goes on beside checks 6-7 at the "
            f"lowest CPU priority, and they use {os.path.relpath(r.trainer)} (built from the same sources)")

    # 6 alone: the throughput comparison needs the GPU, and the CPU that launches its kernels, to
    # itself (but for a build still running at the lowest priority).
    record(6, "throughput", bench, r)
    return build_pending


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--trainer", required=True)
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--seconds", type=float, default=540, help="everything must end within this")
    p.add_argument("--cpu-dry-run", action="store_true")
    p.add_argument("--quality-only", action="store_true", help="check 7 alone (a recipe tried in a second call)")
    p.add_argument("--quality-flags", default="", help="trainer flags added to check 7's config, as one string")
    p.add_argument("--ensemble", type=int, default=1, help="check 7 trains this many models at once and decodes "
                   "with all of them")
    p.add_argument("--same-direction", action="store_true", help="with --ensemble: every member reads left to "
                   "right (by default every second one reads right to left)")
    p.add_argument("--build-status", help="the file a build beside checks 1-5 writes 'RC SECONDS' to")
    p.add_argument("--build-pid", type=int, help="that build's process group")
    p.add_argument("--built", default="build-gpu/trainer", help="the trainer that build makes")
    a = p.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(f"{WORK}/logs")
    if a.cpu_dry_run:  # attention auto times its kernels on the CPU too, as it does on a GPU
        os.environ["RESUMABLE_TEST_TIME_ATTENTION"] = "1"
    r = Runner(a.trainer, a.python, "cpu" if a.cpu_dry_run else "cuda", a.cpu_dry_run, a.seconds,
               shlex.split(a.quality_flags), not a.same_direction)
    results = {}

    def record(n, name, fn, *args):
        try:
            ok, text = fn(*args)
        except Exception as e:  # a broken check must not take the others with it
            ok, text = False, f"{type(e).__name__}: {e}"
        results[n] = (name, ok, text)
        say(f"{n} {name}: {'PASS' if ok else 'FAIL'} {text}")

    build_pending = False if a.quality_only else checks_before_quality(r, a, record)

    # 7 after it: gpu.json trained within the time left (at most 5 minutes), evaluated.
    record(7, "quality", quality, r, "configs/tiny.json" if r.dry else "configs/gpu.json", max(1, a.ensemble))
    if build_pending:
        record(0, "build", finish_build, r, a.build_status, a.build_pid, a.built, False)

    say(f"summary ({(time.monotonic() - r.t0):.0f}s):")
    for n in sorted(results):
        name, ok, text = results[n]
        say(f"{n} {name}: {'PASS' if ok else 'FAIL'} {text}")
    expected = 1 if a.quality_only else 8 if a.build_status else 7
    return 0 if all(ok for _, ok, _ in results.values()) and len(results) == expected else 1


if __name__ == "__main__":
    sys.exit(main())
