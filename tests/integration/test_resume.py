"""Issue 4: exact resume at any step, on signals, after damage, at another world size."""
import signal

import pytest
import torch

from conftest import TINY, TRAINER, answer_at_terminal, assert_same_training, load, run, start, wait_for_line


# Fast scope: mid-epoch, the epoch boundary itself, and the second epoch. Full only: the first and
# last steps, and the boundary's neighbours.
@pytest.mark.parametrize("stops", [[13, 67, 100], pytest.param([1, 133], marks=pytest.mark.full),
                                   pytest.param([66, 68], marks=pytest.mark.full)])
def test_stopped_and_resumed_equals_uninterrupted(tmp_path, reference_run, stops):
    # 67 steps per epoch: stops cover mid-epoch, the epoch boundary and its neighbours.
    for s in stops:
        run(["--run-dir", tmp_path, "--max-steps", s], launcher="mpirun")
        assert load(tmp_path / "checkpoints" / "last.pt")["train_state"]["global_step"] == s
    code, out = run(["--run-dir", tmp_path], launcher="mpirun")
    assert "resumed from" in out
    final = load(tmp_path / "checkpoints" / "last.pt")
    assert_same_training(reference_run, final, f"stops {stops}")
    assert final["history"]["resumed_at_step"].tolist() == stops


@pytest.mark.full  # a --max-steps stop under torchrun; the kept torchrun SIGTERM case resumes exactly too
def test_torchrun_resume_equals_uninterrupted(tmp_path, reference_run):
    run(["--run-dir", tmp_path, "--max-steps", 40], launcher="torchrun")
    run(["--run-dir", tmp_path], launcher="torchrun")
    assert_same_training(reference_run, load(tmp_path / "checkpoints" / "last.pt"), "torchrun")


# Full only: SIGUSR2 (handled like SIGUSR1: util/signals_test), and SIGINT to the trainer alone, whose
# stop test_launch_scripts' Ctrl-C case keeps; it adds a one-rank resume, not compared (rounding).
@pytest.mark.parametrize("launcher,sig", [("mpirun", signal.SIGUSR1),
                                          pytest.param("mpirun", signal.SIGUSR2, marks=pytest.mark.full),
                                          ("torchrun", signal.SIGTERM),
                                          pytest.param("single", signal.SIGINT, marks=pytest.mark.full)])
def test_signal_saves_agreed_step_and_resume_is_exact(tmp_path, reference_run, launcher, sig):
    # Slow synchronous saves are the brake that lands the signal mid-training, not after the end
    # (background saves would not slow the steps).
    p = start(["--run-dir", tmp_path, "--save-every-steps", 10, "--async-save", "false"], launcher=launcher,
              np=2 if launcher != "single" else 1, env={"RESUMABLE_TEST_WRITE_DELAY_MS": "2"})
    wait_for_line(p, "step 20/")
    p.send_signal(sig)  # to the launcher only: it forwards to the ranks
    out, _ = p.communicate(timeout=120)
    # The ranks exit 75; mpirun passes that on, torchrun reports its own failure (1) after a signal.
    assert p.returncode == (1 if launcher == "torchrun" else 75), out[-3000:]
    ck = load(tmp_path / "checkpoints" / "last.pt")
    stopped_at = ck["train_state"]["global_step"]
    assert 20 <= stopped_at < 134
    assert f"stopped by {signal.Signals(sig).name} at step {stopped_at}" in out
    if launcher == "single":
        run(["--run-dir", tmp_path, "--max-steps", 67])
        return  # a one-rank run differs from the 2-rank reference in float rounding
    run(["--run-dir", tmp_path], launcher=launcher)
    assert_same_training(reference_run, load(tmp_path / "checkpoints" / "last.pt"), f"after {sig}")


# Full only: bit rot in place (last.pt and its hard-linked step-40 both bad, found by the checksum);
# test_resume_safety's fallback past a damaged last.pt and test_faults' bit flips are kept.
@pytest.mark.full
def test_corrupt_last_falls_back_to_newest_good(tmp_path):
    # Synchronous saves: the test needs the snapshots of exactly steps 10, 20, 30 (a background
    # save may come a step late when the write before it is still going).
    run(["--run-dir", tmp_path, "--max-steps", 40, "--save-every-steps", 10, "--keep-last", 5, "--async-save", "false"])
    ckdir = tmp_path / "checkpoints"
    # last.pt and step-40 are one file (hard links): damage it in place, as bit rot would.
    with open(ckdir / "last.pt", "r+b") as f:
        f.seek(100000)
        f.write(b"\xde\xad\xbe\xef" * 16)
    code, out = run(["--run-dir", tmp_path, "--max-steps", 45])
    assert "skipping unreadable checkpoint" in out and "checksum mismatch" in out
    assert "falling back to the newest good checkpoint" in out
    assert "step-00000030.pt" in out and "resumed from" in out
    assert load(ckdir / "last.pt")["train_state"]["global_step"] == 45


def test_world_size_change_skips_and_repeats_nothing(tmp_path):
    trace = tmp_path / "trace"
    env = {"RESUMABLE_TEST_TRACE_SAMPLES": str(trace)}
    run(["--run-dir", tmp_path / "r", "--max-steps", 25], launcher="mpirun", np=3, env=env)
    code, out = run(["--run-dir", tmp_path / "r", "--max-steps", 67], launcher="mpirun", np=2, env=env)
    assert "saved by 3 rank(s), now 2" in out
    seen = []
    for f in tmp_path.glob("trace.rank*"):
        for line in f.read_text().splitlines():
            epoch, step, *ids = (int(x) for x in line.split())
            assert epoch == 0
            seen += ids
    n = load(tmp_path / "r" / "checkpoints" / "last.pt")["sampler"]["dataset_size"]
    assert len(seen) == n, f"{len(seen)} samples consumed in an epoch of {n}"
    assert sorted(seen) == list(range(n))
    # And back up to 4 ranks for the next epoch.
    run(["--run-dir", tmp_path / "r", "--max-steps", 70], launcher="mpirun", np=4)


def test_architecture_mismatch_is_a_clear_error(tmp_path):
    run(["--run-dir", tmp_path, "--max-steps", 3])
    code, out = run(["--run-dir", tmp_path, "--d-model", 32, "--heads", 4, "--decoder-layers", 3], check=False)
    assert code == 1
    assert "d_model: saved 64, given 32" in out and "decoder_layers: saved 2, given 3" in out
    assert "last.pt" in out


# Full only: the re-plan of a grown epoch count end to end (the log line, the saved plan, the LR
# at the re-plan point); the re-plan itself is unit-tested (warmup_cosine_schedule_test).
@pytest.mark.full
def test_more_epochs_replans_the_schedule(tmp_path):
    run(["--run-dir", tmp_path, "--max-steps", 100])  # of 134 planned (2 epochs)
    code, out = run(["--run-dir", tmp_path, "--epochs", 3])
    assert "LR schedule re-planned: end step 134 -> 201" in out
    ck = load(tmp_path / "checkpoints" / "last.pt")
    lr = ck["history"]["learning_rate"]
    assert len(lr) == 201 and ck["train_state"]["epoch"] == 3
    # Continuous at the re-plan point (the LR the old plan gave step 100), then a cosine down to
    # min_lr at the new end.
    import math
    planned = 1e-5 + (0.002 - 1e-5) * 0.5 * (1 + math.cos(math.pi * (100 - 20) / (134 - 20)))
    assert abs(lr[100].item() - planned) < 1e-12
    assert lr[100].item() > lr[150].item() > lr[200].item() > ck["config"]["min_lr"]
    assert ck["lr_scheduler"]["total_steps"] == 201 and ck["lr_scheduler"]["anchor_step"] == 100


# Full only: a finished run extended at min_lr (the schedule past its end: its unit tests).
@pytest.mark.full
def test_finished_run_says_so_and_extends_at_min_lr(tmp_path):
    run(["--run-dir", tmp_path])  # 2 epochs, complete
    code, out = run(["--run-dir", tmp_path])
    assert "training already complete" in out
    code, out = run(["--run-dir", tmp_path, "--epochs", 3])
    lr = load(tmp_path / "checkpoints" / "last.pt")["history"]["learning_rate"]
    assert len(lr) == 201 and abs(lr[150].item() - 1e-5) < 1e-12  # the decay had already ended


def test_batch_size_and_lr_changes_warn(tmp_path):
    run(["--run-dir", tmp_path, "--max-steps", 10])
    # Another batch size draws other batches than the checkpoint recorded: intended, so said.
    code, out = run(["--run-dir", tmp_path, "--max-steps", 20, "--batch-size", 32, "--lr", 0.001,
                     "--allow-data-drift"])
    assert "resumed with a changed config: batch_size 64 -> 32" in out
    assert "lr 0.002 -> 0.001" in out


def test_resume_never_refuses_then_force_sets_aside(tmp_path):
    run(["--run-dir", tmp_path, "--max-steps", 3])
    code, out = run(["--run-dir", tmp_path, "--resume", "never"], check=False)
    assert code == 2 and "already holds checkpoints" in out
    code, out = run(["--run-dir", tmp_path, "--resume", "never", "--force", "--max-steps", 2])
    assert "moved" in out
    old = [d for d in tmp_path.iterdir() if d.name.startswith("checkpoints.old-")]
    assert len(old) == 1 and load(old[0] / "last.pt")["train_state"]["global_step"] == 3
    assert load(tmp_path / "checkpoints" / "last.pt")["train_state"]["global_step"] == 2


def test_resume_path_and_config_file_key(tmp_path):
    run(["--run-dir", tmp_path / "a", "--max-steps", 4, "--save-every-steps", 2])
    code, out = run(["--run-dir", tmp_path / "b", "--resume", tmp_path / "a" / "checkpoints" / "step-00000002.pt",
                     "--max-steps", 5])
    assert "resumed from" in out and "step 2" in out
    cfg = tmp_path / "c.json"
    cfg.write_text('{"d_model": 64, "heads": 4, "ff_dim": 256, "max_train_words": 4000, "batch_size": 64, '
                   '"max_eval_words": 400, "resume": "%s", "run_dir": "%s"}'
                   % (tmp_path / "a" / "checkpoints" / "last.pt", tmp_path / "c"))
    import subprocess
    from conftest import TRAINER
    p = subprocess.run([TRAINER, "--config", str(cfg), "--max-steps", "6"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    assert p.returncode == 0, p.stdout
    assert "resumed from" in p.stdout and "epoch 0, step 4" in p.stdout


def test_resume_without_config_uses_the_saved_one(tmp_path):
    run(["--run-dir", tmp_path, "--max-steps", 3, "--lr", 0.003])
    import subprocess
    from conftest import TRAINER
    p = subprocess.run([TRAINER, "--run-dir", str(tmp_path), "--max-steps", "5"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    assert p.returncode == 0, p.stdout
    ck = load(tmp_path / "checkpoints" / "last.pt")
    assert ck["config"]["d_model"] == 64 and ck["config"]["lr"] == 0.003
    assert ck["train_state"]["global_step"] == 5


def test_init_from_loads_weights_only(tmp_path):
    run(["--run-dir", tmp_path / "a", "--max-steps", 30])
    src = load(tmp_path / "a" / "checkpoints" / "last.pt")
    code, out = run(["--run-dir", tmp_path / "b", "--init-from", tmp_path / "a" / "checkpoints" / "last.pt",
                     "--lr", 0.0005, "--max-steps", 1])
    assert "initialized weights from" in out
    ck = load(tmp_path / "b" / "checkpoints" / "last.pt")
    assert ck["train_state"]["global_step"] == 1 and ck["lr_scheduler"]["max_lr"] == 0.0005
    # One step away from the source weights, not from a fresh init.
    w = "source_embedding.weight"
    assert (ck["model"][w] - src["model"][w]).abs().max() < 0.01


def test_python_reads_every_section(tmp_path):
    run(["--run-dir", tmp_path, "--max-steps", 4], launcher="mpirun")
    ck = load(tmp_path / "checkpoints" / "last.pt")  # weights_only=True
    assert isinstance(ck, dict)
    assert ck["format_version"] == 1 and isinstance(ck["trainer_version"], str)
    assert all(isinstance(v, torch.Tensor) for v in ck["model"].values())
    assert set(ck["optimizer"]["state"]) == set(ck["model"])
    assert ck["optimizer"]["param_groups"][0]["params"] == list(ck["model"])
    assert ck["lr_scheduler"]["step"] == 4 and ck["loss_scaler"]["enabled"] is False
    assert [t.dtype for t in ck["rng"]["cpu"]] == [torch.uint8, torch.uint8]
    assert ck["sampler"]["cursor"] == 4 * 64 and ck["world_size"] == 2
    assert ck["history"]["train_loss"].dtype == torch.float64 and len(ck["history"]["train_loss"]) == 4
    assert ck["config"]["batch_size"] == 64 and ck["vocabulary"]["phonemes"][0] == "AA"


@pytest.mark.parametrize("answer,expect", [("n", "not resuming: moved"), ("", "resumed from")])
def test_terminal_asks_before_resuming(tmp_path, answer, expect):
    """On a terminal --resume auto asks first; in batch jobs (no TTY, or CI set) it never waits."""
    run(["--run-dir", tmp_path, "--max-steps", 3])
    code, out = answer_at_terminal([TRAINER, "--config", TINY, "--run-dir", tmp_path, "--max-steps", 4], answer)
    assert "Resume from " in out and "(epoch 0, step 3)? [Y/n]" in out, out
    assert code == 0, out[-2000:]
    assert expect in out


# Full only: fp16 autocast and the loss scaler's state across a resume (a GPU run's path; the scaler
# arithmetic is unit-tested); about 4 minutes of one-rank fp16 on a CPU.
@pytest.mark.full
def test_fp16_loss_scaler_state_resumes_exactly(tmp_path):
    """Mixed precision with the dynamic loss scaler: its scale and counters are checkpointed, so a
    resumed fp16 run equals an uninterrupted one (CPU autocast here; the same code runs on GPU)."""
    args = ["--amp", "fp16", "--epochs", 1]
    run(["--run-dir", tmp_path / "a"] + args)
    run(["--run-dir", tmp_path / "b", "--max-steps", 30] + args)
    run(["--run-dir", tmp_path / "b"] + args)
    a, b = load(tmp_path / "a" / "checkpoints" / "last.pt"), load(tmp_path / "b" / "checkpoints" / "last.pt")
    assert a["loss_scaler"]["enabled"] is True and a["loss_scaler"]["scale"] > 0
    # Clean steps counted across the resume at step 30: a scaler restarted fresh would count fewer.
    assert a["loss_scaler"]["growth_tracker"] + a["loss_scaler"]["skipped_steps"] > 30
    assert a["loss_scaler"] == b["loss_scaler"]
    assert_same_training(a, b, "fp16")


# Full only: attention auto's timed choice kept by a resume (a GPU run's path, timed here by a test
# switch); the kernels themselves are unit-tested.
@pytest.mark.full
def test_timed_attention_kernel_is_kept_by_the_resume(tmp_path):
    """attention auto times the kernels at a run's start (on a GPU; here by a test switch on the
    CPU) and keeps the choice in its checkpoints: a resume must not time again and perhaps choose
    the other kernel, whose float results differ, so the resumed run would not be exact."""
    timed = {"RESUMABLE_TEST_TIME_ATTENTION": "1"}
    args = ["--epochs", 1, "--attention", "auto"]
    code, out = run(["--run-dir", tmp_path / "b", "--max-steps", 30] + args, launcher="mpirun", env=timed)
    assert "attention auto: " in out and " ms) over " in out, out
    chosen = load(tmp_path / "b" / "checkpoints" / "last.pt")["train_state"]
    assert chosen["attention_device"] == "cpu" and chosen["attention_kernel"] in ("fused", "math")
    kernel = chosen["attention_kernel"]
    other = "math" if kernel == "fused" else "fused"
    code, out = run(["--run-dir", tmp_path / "b"] + args, launcher="mpirun", env=timed)
    assert f"attention auto: {kernel}, as timed at the run's start (kept, so that the resume is exact)" in out, out
    b = load(tmp_path / "b" / "checkpoints" / "last.pt")
    assert b["train_state"]["attention_kernel"] == kernel
    run(["--run-dir", tmp_path / "a", "--epochs", 1, "--attention", kernel], launcher="mpirun")
    a = load(tmp_path / "a" / "checkpoints" / "last.pt")
    assert a["train_state"]["attention_kernel"] == ""  # chosen by the config, not timed
    a["train_state"].update(attention_kernel=kernel, attention_device="cpu")
    assert_same_training(a, b, f"auto ({kernel}) resumed")
    # The other kernel computes the same function but not the same floats: the choice matters.
    run(["--run-dir", tmp_path / "c", "--epochs", 1, "--attention", other], launcher="mpirun")
    c = load(tmp_path / "c" / "checkpoints" / "last.pt")
    assert not all(torch.equal(c["model"][k], b["model"][k]) for k in b["model"])
    assert abs(c["history"]["train_loss"][-1] - b["history"]["train_loss"][-1]) < 0.05
