"""Issue 15: a resume that proves itself. Every checkpoint records the next global batches (ids and
words), each rank's tensors of the first one, the last loss and a probe loss; a resumed run compares
what it draws with the record before training on it, and `ckpt verify --deep` recomputes the probe."""
import json
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, TRAINER, load, run

SAVED_AT = 20


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A 2-rank run of tiny stopped at step 20 (a synchronous save, so the file is that step's)."""
    d = tmp_path_factory.mktemp("proof")
    run(["--run-dir", d, "--max-steps", SAVED_AT, "--async-save", "false"], launcher="mpirun")
    return d / "checkpoints" / "last.pt"


def resume(saved, tmp_path, *args, np=2, env=None):
    run_dir = tmp_path / "run"
    shutil.copytree(saved.parent.parent, run_dir)
    code, out = run(["--run-dir", run_dir, "--max-steps", SAVED_AT + 6, *args], launcher="mpirun" if np > 1 else "single",
                    np=np, env=env, check=False)
    return code, out, run_dir / "checkpoints" / "last.pt"


def test_the_checkpoint_records_what_comes_next(saved):
    proof = load(saved)["resume_proof"]
    assert proof["step"] == SAVED_AT and proof["world_size"] == 2
    assert proof["batch_sizes"].tolist() == [64, 64, 64, 64]  # tiny: global batch 64, 4 recorded
    assert proof["sample_ids"].numel() == 256 and proof["rank_digests"].numel() == 2
    assert proof["probe_samples"].numel() == 16 and proof["probe_tokens"] > 0
    history = load(saved)["history"]["train_loss"]
    assert proof["last_loss"] == pytest.approx(float(history[-1]))


def test_a_resume_verifies_the_next_batches_at_the_same_and_another_world_size(saved, tmp_path):
    code, out, last = resume(saved, tmp_path / "2")
    assert code == 0, out[-3000:]
    assert "resume verified: next 4 batches identical (2 ranks)" in out
    code, out, _ = resume(saved, tmp_path / "1", np=1)
    assert code == 0, out[-3000:]
    assert "resume verified: next 4 batches identical (1 rank; saved by 2, so each rank's tensors were not compared)" in out


def test_a_broken_sampler_resume_is_caught_before_it_trains(saved, tmp_path):
    """An off-by-one in the restored cursor (injected): the first batch differs, the run stops with
    exit 1 before training on it, and the checkpoint stays the one it resumed from."""
    code, out, last = resume(saved, tmp_path, env={"RESUMABLE_TEST_SAMPLER_SKEW": "1"})
    assert code == 1, out[-3000:]
    assert re.search(r"error: resume proof failed: global batch 1 of 4 after step 20 differs at position 0: "
                     r"sample \d+, the checkpoint recorded \d+", out), out[-3000:]
    assert "pass --allow-data-drift if the change is intended" in out
    assert load(last)["train_state"]["global_step"] == SAVED_AT


def test_a_changed_seed_is_caught_and_passes_only_with_allow_data_drift(saved, tmp_path):
    code, out, _ = resume(saved, tmp_path / "a", "--seed", "7")
    assert code != 0 and "seed: saved 1234, given 7" in out, out[-3000:]
    assert "--allow-data-drift" in out
    code, out, last = resume(saved, tmp_path / "b", "--seed", "7", "--allow-data-drift")
    assert code == 0, out[-3000:]
    assert "seed 1234 -> 7 (--allow-data-drift)" in out
    assert re.search(r"warning: resume proof: global batch 1 of 4 after step 20 differs .* "
                     r"\(allowed by --allow-data-drift\)", out), out[-3000:]
    assert load(last)["train_state"]["global_step"] == SAVED_AT + 6


def test_a_changed_data_file_is_caught_and_passes_only_with_allow_data_drift(saved, tmp_path):
    """The same words with every pronunciation reversed: same symbols, lengths and order, other
    words behind the same sample ids."""
    changed = tmp_path / "reversed.dict"
    lines = (ROOT / "data" / "cmudict.dict").read_text(errors="replace").splitlines()
    changed.write_text("\n".join(l.split()[0] + " " + " ".join(reversed(l.split()[1:])) if len(l.split()) > 1 else l
                                 for l in lines) + "\n")
    code, out, _ = resume(saved, tmp_path / "a", "--data", changed)
    assert code != 0 and "the training data differs from the checkpoint's" in out, out[-3000:]
    code, out, _ = resume(saved, tmp_path / "b", "--data", changed, "--allow-data-drift")
    assert code == 0, out[-3000:]
    assert "resumed on other training data than the checkpoint's (--allow-data-drift)" in out
    assert re.search(r"resume proof: global batch 1 of 4 after step 20 has the recorded sample ids but other words "
                     r".*the training data changed \(allowed by --allow-data-drift\)", out), out[-3000:]


def test_an_intended_batch_size_change_passes_with_allow_data_drift(saved, tmp_path):
    # Refused at planning (exit 2, a bad flag), before the data and the model are loaded.
    code, out, _ = resume(saved, tmp_path / "a", "--batch-size", "32")
    assert code == 2, out[-3000:]
    assert re.search(r"error: batch_size: saved 64 in \S+last.pt, given 32: .*resume with --batch-size 64, or pass "
                     r"--allow-data-drift", out), out[-3000:]
    assert "data:" not in out and "model:" not in out, out[-3000:]
    code, out, last = resume(saved, tmp_path / "b", "--batch-size", "32", "--allow-data-drift")
    assert code == 0, out[-3000:]
    assert "has 32 samples, the checkpoint recorded 64 (allowed by --allow-data-drift)" in out
    assert load(last)["train_state"]["global_step"] == SAVED_AT + 6


def verify_deep(*args):
    p = subprocess.run([TRAINER, "ckpt", "verify", "--deep", *map(str, args)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=120)
    return p.returncode, p.stdout


def test_ckpt_verify_deep_recomputes_the_probe_loss(saved, tmp_path):
    code, out = verify_deep(saved)
    assert code == 0, out
    m = re.search(r"deep: probe loss ([\d.]+) recorded on cpu, ([\d.]+) recomputed on cpu \(16 samples, \d+ tokens of "
                  r"\S+\): \|difference\| \S+ <= \S+; the last step's training loss was [\d.]+", out)
    assert m, out
    assert float(m[1]) == pytest.approx(float(m[2]), rel=1e-4)
    code, out = verify_deep("--json", saved)
    deep = json.loads(out)[0]["deep"]
    assert code == 0 and deep["ok"] and abs(deep["probe_loss"] - deep["recomputed_loss"]) <= deep["tolerance"]


def test_ckpt_verify_deep_checks_a_background_saves_probe_too(tmp_path):
    """A background save computes its probe on the writer thread, from the snapshot."""
    run(["--run-dir", tmp_path, "--max-steps", 12, "--save-every-steps", 5], launcher="single")
    code, out = verify_deep(tmp_path / "checkpoints" / "step-00000010.pt")
    assert code == 0 and "deep: probe loss" in out, out


def test_ckpt_verify_deep_fails_when_the_weights_do_not_give_the_recorded_loss(tmp_path):
    run(["--run-dir", tmp_path, "--max-steps", 5, "--async-save", "false"], env={"RESUMABLE_TEST_PROBE_OFFSET": "0.01"})
    path = tmp_path / "checkpoints" / "last.pt"
    code, out = verify_deep(path)
    assert code == 1, out
    assert f"BAD  {path}: the weights do not give the loss they were saved with" in out
    assert re.search(r"\|difference\| 1\.0\de-02 > ", out), out


def test_ckpt_verify_deep_refuses_other_data(saved, tmp_path):
    other = tmp_path / "other.dict"
    other.write_text("\n".join((ROOT / "data" / "cmudict.dict").read_text(errors="replace").splitlines()[:-50]) + "\n")
    code, out = verify_deep(saved, "--data", other)
    assert code == 1 and "is not the data this run trained on" in out, out
