"""scripts/bench-ckpt: what a checkpoint costs training, sync against async, and how fast it is
written and read back. See the shell wrapper for usage."""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINER = os.environ.get("TRAINER", os.path.join(ROOT, "build", "trainer"))

# Each config: overrides of its file, steps, save interval. No validation falls inside the steps.
CONFIGS = {
    "tiny": ("configs/tiny.json", {}, 60, 10),
    "base": ("configs/base.json", {}, 24, 6),
    # About 117M parameters: a 1.4 GB checkpoint with AdamW's two moments.
    "large": ("configs/base.json", {"d_model": 1024, "heads": 16, "encoder_layers": 4, "decoder_layers": 4,
                                    "ff_dim": 4096, "batch_size": 32, "amp": "none"}, 20, 3),
}
SAVED = re.compile(r"info: saved \S+ \((\w[^)]*)\): step (\d+), ([\d.]+) MB in ([\d.]+)s .*training paused ([\d.]+)s")
RESUMED = re.compile(r"read and verified in ([\d.]+)s, loaded in ([\d.]+)s")


def train(work, name, cfg_path, overrides, steps, every, ranks, extra):
    run_dir = os.path.join(work, name)
    cfg = dict(json.load(open(os.path.join(ROOT, cfg_path))))
    cfg.update(overrides)
    cfg.update({"save_every_minutes": 0, "save_every_epochs": 0, "eval_every_epochs": 1000, "log_every_steps": 1000})
    cfg_file = os.path.join(work, name + ".json")
    json.dump(cfg, open(cfg_file, "w"))
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(ranks), TRAINER, "--config", cfg_file,
           "--run-dir", run_dir, "--max-steps", str(steps), "--save-every-steps", str(every)] + extra
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit(f"bench-ckpt: {name} failed (exit {p.returncode}):\n{p.stdout[-3000:]}")
    saves = [(m[0], int(m[1]), float(m[2]), float(m[3]), float(m[4])) for m in SAVED.findall(p.stdout)]
    rows = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    times = {r["step"]: r["time"] for r in rows if "loss" in r}
    # Wall time of steps 2..N: saves and all included (step 1 pays for warm-up).
    return run_dir, cfg_file, saves, times[steps] - times[1]


def dd_seconds(directory, mb):
    # Data never written before, from memory (/dev/shm): this VM's disk writes zeros, and a copy of
    # a file it has just written, several times faster than new data. Median of 3: the disk varies.
    source = os.path.join("/dev/shm" if os.path.isdir("/dev/shm") else directory, "bench-ckpt-dd.src")
    path = os.path.join(directory, "dd.tmp")
    times = []
    try:
        for _ in range(3):
            with open(source, "wb") as f:
                for _ in range(max(1, round(mb))):
                    f.write(os.urandom(1 << 20))
            t = time.perf_counter()
            subprocess.run(["dd", f"if={source}", f"of={path}", "bs=4M", "conv=fsync"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - t)
            os.unlink(path)
    finally:
        if os.path.exists(source):
            os.unlink(source)
    return statistics.median(times)


def torch_load_seconds(path):
    import torch
    best = []
    for _ in range(3):
        t = time.perf_counter()
        torch.load(path, map_location="cpu", weights_only=True)
        best.append(time.perf_counter() - t)
    return statistics.median(best)


def bench(work, label, ranks):
    cfg_path, overrides, steps, every = CONFIGS[label]
    print(f"bench-ckpt: {label}: {steps} steps, a save every {every}, {ranks} ranks", flush=True)
    _, _, _, t_none = train(work, f"{label}-none", cfg_path, overrides, steps, 0, ranks, [])
    _, _, sync, t_sync = train(work, f"{label}-sync", cfg_path, overrides, steps, every, ranks, ["--async-save", "false"])
    run_dir, cfg_file, asyn, t_async = train(work, f"{label}-async", cfg_path, overrides, steps, every, ranks, [])
    periodic_sync = [s for s in sync if s[0] == "periodic"]
    periodic_async = [s for s in asyn if s[0] == "periodic"]
    mb = statistics.median(s[2] for s in periodic_sync)
    write_s = statistics.median(s[3] for s in periodic_sync)
    stall_sync = statistics.median(s[4] for s in periodic_sync)
    # The first background save of a process also pays for faulting in its snapshot's memory
    # (later ones reuse it): reported apart, the median is over the others.
    first_async = periodic_async[0][4]
    stall_async = statistics.median(s[4] for s in periodic_async[1:] or periodic_async)
    last = os.path.join(run_dir, "checkpoints", "last.pt")
    dd = dd_seconds(os.path.dirname(last), mb)
    # What one background save costs training, measured: the extra wall time of the async run over
    # the run without saves, per save; never less than the stall itself (the runs are noisy).
    n = len(periodic_async)
    measured = (t_async - t_none) / n
    cost = max(measured, stall_async)
    step_s = t_none / (steps - 1)

    # Checkpoints are written with O_DIRECT, so the file is not in the page cache; both readers
    # below get it from there (read once first), which compares the software, not the disk.
    with open(last, "rb") as f:
        while f.read(1 << 24):
            pass
    p = subprocess.run([TRAINER, "--config", cfg_file, "--run-dir", run_dir, "--resume", last, "--max-steps", str(steps)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    m = RESUMED.search(p.stdout)
    if not m:
        sys.exit(f"bench-ckpt: resume of {last} printed no timing:\n{p.stdout[-2000:]}")
    read_s, load_s = float(m[1]), float(m[2])
    py_s = torch_load_seconds(last)
    r = {"config": label, "mb": mb, "step_s": step_s, "stall_sync": stall_sync, "stall_async": stall_async, "first_async": first_async,
         "write_s": write_s, "dd_s": dd, "cost_s": cost, "measured_s": measured, "resume_s": read_s + load_s,
         "torch_load_s": py_s}
    print(f"bench-ckpt: {label}: {mb:.1f} MB, step {step_s:.3f}s; stall per save sync {stall_sync:.3f}s, async "
          f"{stall_async:.3f}s ({stall_async / stall_sync:.3f}; first one {first_async:.3f}s); write {write_s:.3f}s ({mb / write_s:.0f} MB/s) vs dd "
          f"{dd:.3f}s ({mb / dd:.0f} MB/s): {dd / write_s:.2f}; async save costs {cost:.3f}s of training "
          f"(measured {measured:+.3f}s): {100 * cost / 60:.2f}% at 1 save/min; resume {read_s:.3f}s read+verify + "
          f"{load_s:.3f}s load vs torch.load {py_s:.3f}s", flush=True)
    return r


def main():
    ap = argparse.ArgumentParser(prog="bench-ckpt")
    ap.add_argument("--configs", default="tiny,base,large")
    ap.add_argument("--ranks", type=int, default=2)
    args = ap.parse_args()
    labels = args.configs.split(",")
    for l in labels:
        if l not in CONFIGS:
            sys.exit(f"bench-ckpt: --configs: unknown config '{l}' (expected some of {', '.join(CONFIGS)})")
    base = os.environ.get("BENCH_DIR", os.path.join(ROOT, "runs"))
    os.makedirs(base, exist_ok=True)
    work = tempfile.mkdtemp(prefix="bench-ckpt.", dir=base)
    try:
        results = [bench(work, l, args.ranks) for l in labels]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r = results[-1]
    print(f"bench-ckpt: async stall/sync = {r['stall_async'] / r['stall_sync']:.3f}, write/dd = "
          f"{r['dd_s'] / r['write_s']:.2f}, overhead at 1 save/min = {100 * r['cost_s'] / 60:.2f}% "
          f"({r['config']}, {r['mb']:.0f} MB, {args.ranks} ranks)")


if __name__ == "__main__":
    main()
