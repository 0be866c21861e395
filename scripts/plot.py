"""Plots a run from its checkpoint's own histories, so it works after the run's logs are gone.

    scripts/plot RUN_DIR|CHECKPOINT [-o loss.png]

Panels: training loss per step and per epoch, the learning rate, validation loss and WER per
evaluation; a dashed vertical line marks every resume. RUN_DIR reads RUN_DIR/checkpoints/last.pt
(else the newest readable snapshot, else best.pt).
"""
import argparse
import glob
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def load(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged file: say which, try the next
        print(f"plot: {path}: not readable ({str(e).splitlines()[0]})", file=sys.stderr)
        return None


def find_checkpoint(target):
    if os.path.isfile(target):
        return target, load(target)
    folder = os.path.join(target, "checkpoints") if os.path.isdir(os.path.join(target, "checkpoints")) else target
    if not os.path.isdir(folder):
        sys.exit(f"plot: {target}: neither a checkpoint file nor a run directory")
    names = [os.path.join(folder, "last.pt")]
    names += sorted(glob.glob(os.path.join(folder, "step-*.pt")), reverse=True)
    names.append(os.path.join(folder, "best.pt"))
    for name in names:
        if os.path.isfile(name):
            ck = load(name)
            if ck is not None:
                return name, ck
    sys.exit(f"plot: {folder}: no readable checkpoint")


def as_list(v):
    return v.tolist() if isinstance(v, torch.Tensor) else list(v)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("target", help="RUN_DIR or a checkpoint file")
    p.add_argument("-o", "--output", default="loss.png", help="image to write (PNG, SVG or PDF by extension)")
    args = p.parse_args()
    path, ck = find_checkpoint(args.target)
    for key in ("history", "train_state", "sampler", "config"):
        if key not in ck:
            sys.exit(f"plot: {path}: no '{key}' component (not a trainer checkpoint?)")
    h = {k: as_list(v) for k, v in ck["history"].items()}  # numeric histories are saved as 1-D tensors
    state, sampler, cfg = ck["train_state"], ck["sampler"], ck["config"]
    steps = list(range(1, len(h["train_loss"]) + 1))
    resumes = h.get("resumed_at_step", [])
    per_epoch = max(1, math.ceil(sampler["dataset_size"] / max(1, cfg.get("batch_size", 1))))

    fig, axes = plt.subplots(3, 1, figsize=(10, 10), sharex=True)
    ax = axes[0]
    ax.plot(steps, h["train_loss"], lw=0.8, alpha=0.6, label="train loss per step")
    if h["epoch_train_loss"]:
        xs = [per_epoch * (e + 1) for e in range(len(h["epoch_train_loss"]))]
        ax.plot(xs, h["epoch_train_loss"], "o-", lw=2, label="train loss per epoch (mean)")
    ax.set_ylabel("loss")
    ax.set_title(f"{cfg.get('name') or os.path.basename(str(cfg.get('run_dir', ''))) or 'run'}: step {state['global_step']}, epoch {state['epoch']} ({os.path.basename(path)})")

    axes[1].plot(steps, h["learning_rate"], color="tab:green", label="learning rate")
    axes[1].set_ylabel("learning rate")

    ax = axes[2]
    if h["eval_step"]:
        ax.plot(h["eval_step"], h["val_loss"], "s-", color="tab:red", label="validation loss")
        ax.set_ylabel("validation loss")
        wer = ax.twinx()
        wer.plot(h["eval_step"], [100 * w for w in h["val_wer"]], "^-", color="tab:purple", label="validation WER (%)")
        wer.set_ylabel("WER (%)")
        wer.legend(loc="upper right")
    else:
        ax.text(0.5, 0.5, "no validation yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("optimizer step")

    for i, a in enumerate(axes):
        for j, r in enumerate(resumes):
            a.axvline(r, color="gray", ls="--", lw=1, label="resume" if i == 0 and j == 0 else None)
        if a.get_legend_handles_labels()[0]:
            a.legend(loc="upper left" if a is not axes[2] else "upper center")
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"plot: {args.output} from {path} ({len(steps)} steps, {len(h['eval_step'])} evaluations, "
          f"{len(resumes)} resume(s))")


if __name__ == "__main__":
    main()
