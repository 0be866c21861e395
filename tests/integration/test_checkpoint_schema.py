"""Issue 13, the schema: a checkpoint is a map of versioned components. Files written before this
change (tests/data/checkpoint-e70cad3-step12.pt, by main at e70cad3) load, resume and verify, with
every field they lack filled by its documented default and said in the log; a component newer than
this trainer, or one it does not know, is refused with "upgrade the trainer"."""
import json
import shutil
import subprocess

import pytest
import torch

from conftest import ROOT, TRAINER, load, run
from ckpt_tools import save_with_checksum

OLD = ROOT / "tests" / "data" / "checkpoint-e70cad3-step12.pt"


def trainer(*args):
    p = subprocess.run([TRAINER] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=240, cwd=ROOT, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout


def test_a_checkpoint_of_the_previous_main_verifies_and_resumes(tmp_path):
    old = tmp_path / "old.pt"
    shutil.copy(OLD, old)
    before = load(old)
    assert "component_versions" not in before and "eval_pending" not in before["train_state"]
    assert "save_timeout_s" not in before["config"]

    rc, out = trainer("ckpt", "verify", old)
    assert rc == 0 and out.startswith("OK"), out
    rc, out = trainer("ckpt", "info", old, "--json")
    info = json.loads(out)
    versions = info["component_versions"]
    assert rc == 0 and info["step"] == 12 and versions.pop("resume_proof") == 0  # absent: written before it existed
    assert set(versions.values()) == {1}

    rc, log = trainer("--resume", old, "--run-dir", tmp_path / "run", "--max-steps", 15)
    assert rc == 0, log
    assert "older checkpoint: config.save_timeout_seconds: not in this file (written before it existed), using its default 1800" in log
    # Keys renamed since: read under their new names, said once as a note, never as a warning.
    assert "older checkpoint: config: keys of their former names read under today's (" in log
    assert "limit_words as max_train_words" in log and "resume_from as resume" in log
    assert " is now " not in log, log
    assert "older checkpoint: train_state.eval_pending: not in this file (written before it existed), using its default false" in log
    assert "older checkpoint: resume_proof: not in this file (written before it existed), so this resume is not checked" in log
    assert "older checkpoint: config.async_save: not in this file (written before it existed), using its default true" in log
    assert "older checkpoint: train_state.fitted_epochs: not in this file (written before it existed), using its default 0" in log
    assert "older checkpoint: config.time_budget_minutes: not in this file (written before it existed), using its default 0" in log
    assert "older checkpoint: config.target_order: not in this file (written before it existed), using its default" in log
    after = load(tmp_path / "run" / "checkpoints" / "last.pt")
    assert after["train_state"]["global_step"] == 15 and after["history"]["resumed_at_step"].tolist() == [12]
    assert torch.equal(after["history"]["train_loss"][:12], before["history"]["train_loss"])
    assert after["component_versions"]["train_state"] == 4 and after["component_versions"]["config"] == 8
    assert after["train_state"]["eval_pending"] is False and after["config"]["save_timeout_seconds"] == 1800.0
    assert "limit_words" not in after["config"] and after["config"]["max_train_words"] == before["config"]["limit_words"]
    assert after["config"]["target_order"] == "left_to_right"
    rc, out = trainer("ckpt", "verify", tmp_path / "run" / "checkpoints" / "last.pt")
    assert rc == 0, out


@pytest.fixture(scope="module")
def current(tmp_path_factory):
    d = tmp_path_factory.mktemp("schema")
    run(["--run-dir", d / "run", "--max-steps", 3])
    return load(d / "run" / "checkpoints" / "last.pt")


@pytest.mark.parametrize("change", ["newer", "unknown"])
def test_a_newer_or_unknown_component_is_refused_with_upgrade(current, tmp_path, change):
    ck = dict(current)
    ck["component_versions"] = dict(current["component_versions"])
    if change == "newer":
        ck["component_versions"]["optimizer"] = current["component_versions"]["optimizer"] + 1
        ck["trainer_version"] = "9.0.0"
        want = "component 'optimizer' is version 2, written by trainer 9.0.0; this is trainer"
    else:
        ck["component_versions"]["ema"] = 1
        ck["ema"] = {"decay": 0.999}
        want = "component 'ema' (version 1) is unknown to this trainer"
    f = tmp_path / "run" / "checkpoints" / "last.pt"
    f.parent.mkdir(parents=True)
    save_with_checksum(ck, f)
    rc, out = trainer("ckpt", "verify", f)
    assert rc == 1 and want in out and "upgrade the trainer" in out, out
    rc, log = trainer("--run-dir", tmp_path / "run", "--max-steps", 6)
    assert rc == 1 and want in log and "upgrade the trainer" in log, log
    assert sorted(p.name for p in f.parent.iterdir()) == ["last.pt"]  # nothing written over it


def test_a_checksum_algorithm_this_trainer_does_not_know_is_refused_not_skipped(current, tmp_path):
    # A newer trainer's algorithm: stop and say so, never fall back past the file as if damaged.
    d = tmp_path / "run" / "checkpoints"
    d.mkdir(parents=True)
    save_with_checksum(current, d / "step-00000002.pt")  # an older good one to fall back to
    save_with_checksum(current, d / "last.pt", algorithm="xxh128")
    rc, out = trainer("ckpt", "verify", d / "last.pt")
    assert rc == 1 and "checksum algorithm 'xxh128' is not one this trainer knows" in out, out
    assert "upgrade the trainer" in out
    rc, log = trainer("--run-dir", tmp_path / "run", "--max-steps", 6)
    assert rc == 1 and "checksum algorithm 'xxh128'" in log, log
    assert sorted(p.name for p in d.iterdir()) == ["last.pt", "step-00000002.pt"]


def test_a_checkpoint_whose_tensors_were_on_a_gpu_loads_on_the_cpu(current, tmp_path, monkeypatch):
    # What torch.save writes for CUDA tensors: storages located "cuda:0". The trainer maps every
    # storage to the CPU as it reads, then moves it to its own device (map_location="cpu").
    import torch.serialization
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
    d = tmp_path / "gpu" / "checkpoints"
    d.mkdir(parents=True)
    ck = dict(current)
    # A GPU run also saves each rank's CUDA generator (16 bytes: seed and offset); the CPU ignores it.
    ck["rng"] = {"cpu": current["rng"]["cpu"], "cuda": [torch.arange(16, dtype=torch.uint8)]}
    save_with_checksum(ck, d / "last.pt")
    monkeypatch.undo()
    with open(d / "last.pt", "rb") as f:
        assert b"cuda:0" in f.read(), "the file does not say its tensors were on a GPU"
    rc, out = trainer("ckpt", "verify", d / "last.pt")
    assert rc == 0 and out.startswith("OK"), out
    rc, log = trainer("--run-dir", tmp_path / "gpu", "--device", "cpu", "--max-steps", 5)
    assert rc == 0 and "resumed from" in log and "on cpu" in log, log
    resumed = load(d / "last.pt")
    assert resumed["train_state"]["global_step"] == 5


def test_a_cuda_rng_state_of_the_wrong_type_is_refused(current, tmp_path):
    ck = dict(current)
    ck["rng"] = {"cpu": current["rng"]["cpu"], "cuda": [torch.zeros(4, dtype=torch.float32)]}
    f = tmp_path / "last.pt"
    save_with_checksum(ck, f)
    rc, out = trainer("ckpt", "verify", f)
    assert rc == 1 and "rng.cuda" in out, out
