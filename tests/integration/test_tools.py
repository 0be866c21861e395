"""Issue 13: the everyday tools on real runs of tiny: `trainer ckpt list|info|verify|diff|clean|
backup|export`, `trainer predict`, RUN_DIR/metrics.jsonl, the TensorBoard event files, scripts/plot,
the live progress line, and the command-line forms a new user types."""
import fcntl
import json
import os
import pty
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT, TRAINER, TINY, load, run
from ckpt_tools import save_with_checksum


def tool(*args, check=None, stdin=None):
    """Runs `trainer ARGS...` (a tool, no config); returns (exit code, stdout, stderr)."""
    p = subprocess.run([TRAINER] + [str(a) for a in args], input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=120)
    if check is not None:
        assert p.returncode == check, f"exit {p.returncode}, expected {check}:\n{p.stdout[-3000:]}\n{p.stderr[-2000:]}"
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def stopped_and_resumed(tmp_path_factory):
    """Tiny trained to step 6, then resumed to 12 (saves every 3 steps, 10 kept): the shape of a
    run a user inspects. Synchronous saves, so the snapshots are at exact steps."""
    d = tmp_path_factory.mktemp("tools") / "run"
    run(["--run-dir", d, "--max-steps", 6, "--save-every-steps", 3, "--keep-last", 10, "--async-save", "false"])
    run(["--run-dir", d, "--max-steps", 12, "--save-every-steps", 3, "--keep-last", 10, "--async-save", "false"])
    return d


@pytest.fixture
def run_copy(stopped_and_resumed, tmp_path):
    """A copy a test may change (clean, backup)."""
    d = tmp_path / "run"
    shutil.copytree(stopped_and_resumed, d)
    return d


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Tiny's full two epochs with a stop at step 70: two validations, a resume between them."""
    d = tmp_path_factory.mktemp("evaluated") / "run"
    run(["--run-dir", d, "--max-steps", 70])
    run(["--run-dir", d])
    return d


# --- ckpt list -------------------------------------------------------------------------------

def test_list_shows_every_file_with_position_marks_and_status(run_copy):
    c = run_copy / "checkpoints"
    (c / "step-00000009.pt").write_bytes((c / "step-00000009.pt").read_bytes()[:30000])  # damaged
    _, out, _ = tool("ckpt", "list", run_copy, check=0)
    lines = {l.split()[0]: l for l in out.splitlines()[2:]}
    assert set(lines) == {"last.pt", "best.pt", "step-00000003.pt", "step-00000006.pt", "step-00000009.pt",
                          "step-00000012.pt"}
    assert lines["last.pt"].split()[1:3] == ["12", "0"] and "last" in lines["last.pt"] and lines["last.pt"].endswith("OK")
    assert "=last" in lines["step-00000012.pt"] and "=best" in lines["step-00000012.pt"]
    assert lines["step-00000003.pt"].split()[1] == "3"
    assert "DAMAGED" in lines["step-00000009.pt"] and "step-00000009.pt" in lines["step-00000009.pt"]

    _, js, _ = tool("ckpt", "list", run_copy / "checkpoints", "--json", check=0)
    doc = json.loads(js)
    by_name = {e["name"]: e for e in doc["checkpoints"]}
    assert doc["damaged"] == 1 and by_name["step-00000009.pt"]["status"].startswith("DAMAGED")
    assert by_name["step-00000006.pt"]["step"] == 6 and by_name["step-00000006.pt"]["status"] == "OK"
    assert by_name["best.pt"]["marks"] == ["best"] and by_name["step-00000006.pt"]["val_loss"] is None
    assert abs(by_name["last.pt"]["saved_at"] - time.time()) < 3600


def test_list_shows_validation_of_each_checkpoint(evaluated):
    _, js, _ = tool("ckpt", "list", evaluated, "--json", check=0)
    by_name = {e["name"]: e for e in json.loads(js)["checkpoints"]}
    h = load(evaluated / "checkpoints" / "last.pt")["history"]
    assert by_name["last.pt"]["val_loss"] == pytest.approx(h["val_loss"][-1].item())
    assert by_name["last.pt"]["val_wer"] == pytest.approx(h["val_wer"][-1].item())
    assert by_name["step-00000067.pt"]["val_loss"] == pytest.approx(h["val_loss"][0].item())


def test_list_of_a_missing_directory_is_a_one_line_error(tmp_path):
    rc, out, err = tool("ckpt", "list", tmp_path / "nope")
    assert rc == 2 and "nope" in err and "not a directory" in err and len(err.strip().splitlines()) == 1


# --- ckpt info -------------------------------------------------------------------------------

def test_info_reports_position_best_history_resumes_versions_and_config(evaluated):
    f = evaluated / "checkpoints" / "last.pt"
    ck = load(f)
    _, js, _ = tool("ckpt", "info", f, "--json", "--tensors", check=0)
    info = json.loads(js)
    assert info["step"] == ck["train_state"]["global_step"] == 134 and info["epoch"] == 2
    assert info["best_step"] == ck["train_state"]["best_step"] and info["best_metric_name"] == "val_loss"
    assert info["history"] == {"steps": 134, "epochs": 2, "evaluations": 2}
    assert info["resumed_at_step"] == [70]
    assert info["meta"]["resumed_from"][0]["path"].endswith("last.pt")
    assert info["world_size"] == 1 and info["trainer_version"] and info["format_version"] == 1
    assert info["component_versions"]["train_state"] == 4 and info["component_versions"]["model"] == 1
    assert info["config"]["d_model"] == 64 and info["config"]["max_train_words"] == 4000
    shapes = {t["name"]: t["shape"] for t in info["tensors"]}
    assert shapes.keys() == ck["model"].keys()
    assert all(list(ck["model"][k].shape) == s for k, s in shapes.items())
    assert info["parameters"] == sum(t.numel() for t in ck["model"].values())

    _, text, _ = tool("ckpt", "info", f, "--tensors", check=0)
    assert "step 134, epoch 2" in text and "resumed at   step 70" in text and "val_loss =" in text
    assert "source_embedding.weight" in text


# --- ckpt verify -----------------------------------------------------------------------------

def test_verify_passes_good_files_and_names_the_bad_one(stopped_and_resumed, tmp_path):
    good = stopped_and_resumed / "checkpoints" / "last.pt"
    bad = tmp_path / "bad.pt"
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    tool("ckpt", "verify", good, check=0)
    rc, out, _ = tool("ckpt", "verify", good, bad, "--json")
    doc = json.loads(out)
    assert rc == 1 and doc[0]["ok"] and not doc[1]["ok"] and "bad.pt" in doc[1]["problem"]


# --- ckpt diff -------------------------------------------------------------------------------

def test_diff_of_a_file_and_itself_is_identical(stopped_and_resumed):
    f = stopped_and_resumed / "checkpoints" / "last.pt"
    _, out, _ = tool("ckpt", "diff", f, f, check=0)
    assert "identical" in out


def test_diff_shows_config_position_and_each_tensor(stopped_and_resumed):
    c = stopped_and_resumed / "checkpoints"
    _, out, _ = tool("ckpt", "diff", c / "step-00000003.pt", c / "step-00000012.pt", check=1)
    assert "max_steps" in out and "6 -> 12" in out                 # the config field the resume changed
    assert "global_step" in out and "3 -> 12" in out
    assert "model: 78 of 78 tensors differ" in out and "max |a-b|" in out
    assert "train_loss" in out and "3 entries -> 12 entries (the first 3 equal)" in out

    _, js, _ = tool("ckpt", "diff", c / "step-00000003.pt", c / "step-00000012.pt", "--json", check=1)
    doc = json.loads(js)
    a, b = load(c / "step-00000003.pt")["model"], load(c / "step-00000012.pt")["model"]
    for d in doc["differences"]["model"]:
        name = d["path"][len("model."):]
        assert d["max_abs_diff"] == pytest.approx((a[name].double() - b[name].double()).abs().max().item(), rel=1e-6)
    assert doc["tensors"]["model"] == {"tensors": 78, "differing": 78}


def test_diff_finds_a_single_changed_weight(stopped_and_resumed, tmp_path):
    f = stopped_and_resumed / "checkpoints" / "last.pt"
    ck = load(f)
    ck["model"]["decoder.0.norm1.bias"][3] += 0.5
    save_with_checksum(ck, tmp_path / "changed.pt")
    _, out, _ = tool("ckpt", "diff", f, tmp_path / "changed.pt", check=1)
    assert "model: 1 of 78 tensors differ" in out
    assert "decoder.0.norm1.bias" in out and "max |a-b| = 0.5" in out


# --- ckpt clean ------------------------------------------------------------------------------

def test_clean_keeps_last_best_newest_and_keep_every(run_copy):
    c = run_copy / "checkpoints"
    before = sorted(p.name for p in c.iterdir())
    _, out, _ = tool("ckpt", "clean", run_copy, "--keep-last", 1, "--keep-every-steps", 6, "--dry-run", check=0)
    assert sorted(p.name for p in c.iterdir()) == before
    assert "would delete" in out and "step-00000003.pt" in out and "step-00000009.pt" in out
    _, out, _ = tool("ckpt", "clean", run_copy, "--keep-last", 1, "--keep-every-steps", 6, check=0)
    assert sorted(p.name for p in c.iterdir()) == ["best.pt", "last.pt", "step-00000006.pt", "step-00000012.pt"]
    tool("ckpt", "verify", c / "last.pt", c / "best.pt", check=0)


def test_clean_refuses_while_a_job_holds_the_run_directory(run_copy):
    with open(run_copy / ".lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        rc, _, err = tool("ckpt", "clean", run_copy, "--keep-last", 1)
    assert rc == 69 and "is in use by another job" in err, err
    assert len(list((run_copy / "checkpoints").glob("step-*.pt"))) == 4


def test_clean_needs_keep_last(run_copy):
    rc, _, err = tool("ckpt", "clean", run_copy)
    assert rc == 2 and "--keep-last" in err


# --- ckpt backup -----------------------------------------------------------------------------

def test_backup_is_verified_listed_never_pruned_and_resumable(run_copy):
    c = run_copy / "checkpoints"
    _, out, _ = tool("ckpt", "backup", c / "step-00000003.pt", check=0)
    backups = list((c / "backup").glob("step-00000003-*.pt"))
    assert len(backups) == 1 and backups[0].read_bytes() == (c / "step-00000003.pt").read_bytes()
    assert "verified" in out
    _, js, _ = tool("ckpt", "list", run_copy, "--json", check=0)
    entry = [e for e in json.loads(js)["checkpoints"] if e["name"].startswith("backup/")]
    assert len(entry) == 1 and entry[0]["marks"] == ["backup"] and entry[0]["step"] == 3 and entry[0]["status"] == "OK"
    tool("ckpt", "clean", run_copy, "--keep-last", 1, check=0)
    assert backups[0].exists() and not (c / "step-00000003.pt").exists()
    # Training on from the backup (no --config, no --run-dir) goes back to step 3 of this run, in
    # this run directory.
    _, log, err = tool("--resume", backups[0], "--max-steps", 8, check=0)
    assert f"run dir {run_copy}" in log + err
    ck = load(c / "last.pt")
    assert ck["train_state"]["global_step"] == 8 and ck["history"]["resumed_at_step"].tolist() == [3]


def test_backup_of_a_damaged_file_writes_nothing(run_copy, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes((run_copy / "checkpoints" / "last.pt").read_bytes()[:50000])
    rc, _, err = tool("ckpt", "backup", bad, tmp_path / "bk")
    assert rc == 1 and "bad.pt" in err
    assert not list((tmp_path / "bk").glob("*.pt")) if (tmp_path / "bk").exists() else True


# --- ckpt export -----------------------------------------------------------------------------

def test_export_safetensors_and_pt_hold_the_model_and_its_vocabulary(stopped_and_resumed, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file
    f = stopped_and_resumed / "checkpoints" / "last.pt"
    ck = load(f)
    tool("ckpt", "export", f, "-o", tmp_path / "m.safetensors", "--format", "safetensors", check=0)
    tool("ckpt", "export", f, "-o", tmp_path / "w.pt", "--format", "pt", check=0)
    for weights in (load_file(str(tmp_path / "m.safetensors")), torch.load(tmp_path / "w.pt", weights_only=True)):
        assert weights.keys() == ck["model"].keys()
        assert all(torch.equal(weights[k], ck["model"][k]) for k in weights)
    with safe_open(str(tmp_path / "m.safetensors"), "pt") as s:
        meta = json.loads(s.metadata()["resumable"])
    vocab = json.loads((tmp_path / "m.vocab.json").read_text())
    assert vocab == meta and vocab["graphemes"] == list(ck["vocabulary"]["graphemes"])
    assert vocab["phonemes"] == list(ck["vocabulary"]["phonemes"])
    assert vocab["architecture"]["d_model"] == 64 and vocab["source"]["step"] == 12
    rc, _, err = tool("ckpt", "export", f, "-o", tmp_path / "x.bin", "--format", "onnx")
    assert rc == 2 and "--format" in err and "safetensors or pt" in err


# --- predict ---------------------------------------------------------------------------------

def test_predict_words_from_arguments_stdin_beam_and_nbest(evaluated):
    f = evaluated / "checkpoints" / "best.pt"
    _, out, _ = tool("predict", "--checkpoint", f, "hello", "World", check=0)
    rows = [l.split("\t") for l in out.splitlines()]
    assert [r[0] for r in rows] == ["hello", "World"] and all(r[1] and r[1] == r[1].upper() for r in rows)
    _, out2, _ = tool("predict", "--checkpoint", f, stdin="hello\n\n  World \n", check=0)
    assert out2 == out
    _, nb, _ = tool("predict", "--checkpoint", f, "--nbest", 3, "hello", check=0)
    rows = [l.split("\t") for l in nb.splitlines()]
    assert len(rows) == 3 and all(r[0] == "hello" for r in rows) and len({r[1] for r in rows}) == 3
    scores = [float(r[2]) for r in rows]
    assert scores == sorted(scores, reverse=True) and all(s < 0 for s in scores)
    _, beam, _ = tool("predict", "--checkpoint", f, "--beam-size", 3, "hello", check=0)
    assert beam.split("\t")[1].strip() == rows[0][1]


def test_predict_scores_given_pronunciations_as_nbest_ranks_them(evaluated, stopped_and_resumed):
    f, other = evaluated / "checkpoints" / "best.pt", stopped_and_resumed / "checkpoints" / "last.pt"
    for ensemble in ([], ["--ensemble", other]):
        _, nb, _ = tool("predict", "--checkpoint", f, *ensemble, "--nbest", 3, "hello", "world", check=0)
        rows = [l.split("\t") for l in nb.splitlines()]
        given = "".join(f"{w}\t{p}\n" for w, p, _ in rows)
        _, scored, _ = tool("predict", "--checkpoint", f, *ensemble, "--score", stdin=given, check=0)
        assert [l.split("\t") for l in scored.splitlines()] == rows
    # CMUdict's spelling (stress digits, any case) scores as the model's phonemes.
    w, p, s = rows[0]
    _, dict_style, _ = tool("predict", "--checkpoint", f, "--score", stdin=f"{w}\t{p.lower().replace(' ', '1 ')}1\n", check=0)
    _, plain, _ = tool("predict", "--checkpoint", f, "--score", stdin=f"{w}\t{p}\n", check=0)
    assert dict_style == plain
    rc, out, err = tool("predict", "--checkpoint", f, "--score", stdin="cat\tK AE T XX\nnotab\ncat\tK AE T\n")
    assert rc == 2 and [l.split("\t")[:2] for l in out.splitlines()] == [["cat", "K AE T"]]
    assert "'cat': phoneme 'XX' not in the model's vocabulary" in err and "'notab': expected word<TAB>PH O N E S" in err
    rc, _, err = tool("predict", "--checkpoint", f, "--score", "--nbest", 2, "cat")
    assert rc == 2 and "--score scores given pronunciations" in err


def test_predict_with_an_ensemble(evaluated, stopped_and_resumed):
    f, other = evaluated / "checkpoints" / "best.pt", stopped_and_resumed / "checkpoints" / "last.pt"
    _, alone, _ = tool("predict", "--checkpoint", f, "--nbest", 2, "hello", "world", check=0)
    _, both, _ = tool("predict", "--checkpoint", f, "--ensemble", other, "--nbest", 2, "hello", "world", check=0)
    rows = [l.split("\t") for l in both.splitlines()]
    assert [r[0] for r in rows] == ["hello", "hello", "world", "world"]
    # The half-trained second model changes the scores: its probabilities are in the average.
    assert [r[2] for r in rows] != [l.split("\t")[2] for l in alone.splitlines()]
    _, twice, _ = tool("predict", "--checkpoint", f, "--ensemble", f, "hello", "world", check=0)
    _, greedy, _ = tool("predict", "--checkpoint", f, "hello", "world", check=0)
    assert twice == greedy
    rc, _, err = tool("predict", "--checkpoint", f, "--ensemble", ",", "hello")
    assert rc == 2 and "--ensemble: expected checkpoint files" in err


def test_predict_reports_an_unknown_character_and_goes_on(evaluated):
    rc, out, err = tool("predict", "--checkpoint", evaluated / "checkpoints" / "best.pt", "naïve", "cat", "x%y")
    assert rc == 2
    assert [l.split("\t")[0] for l in out.splitlines()] == ["cat"]
    assert "'naïve': character 'ï'" in err and "'x%y': character '%'" in err


# --- metrics.jsonl and TensorBoard -------------------------------------------------------------

def tb_scalars(tb_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_metrics_and_tensorboard_follow_the_checkpoint_across_resumes(evaluated):
    rows = [json.loads(l) for l in (evaluated / "metrics.jsonl").read_text().splitlines()]
    ck = load(evaluated / "checkpoints" / "last.pt")
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 135))
    assert [r["loss"] for r in steps] == pytest.approx(ck["history"]["train_loss"].tolist())
    assert [r["lr"] for r in steps] == pytest.approx(ck["history"]["learning_rate"].tolist())
    assert all(r["samples_per_s"] > 0 and r["epoch"] in (0, 1) for r in steps)
    evals = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in evals] == ck["history"]["eval_step"].tolist()
    assert [r["val_wer"] for r in evals] == pytest.approx(ck["history"]["val_wer"].tolist())
    assert [r for r in rows if r.get("event") == "resume"][0]["step"] == 70

    tb = tb_scalars(evaluated / "tb")
    assert [s for s, _ in tb["train/loss"]] == list(range(1, 135))
    assert [v for _, v in tb["train/loss"]] == pytest.approx(ck["history"]["train_loss"].tolist(), rel=1e-6)
    assert [s for s, _ in tb["val/wer"]] == ck["history"]["eval_step"].tolist()
    assert {"train/lr", "train/samples_per_s", "val/loss", "val/per"} <= tb.keys()
    assert tb["run/resumed_at_step"] == [(70, 70.0)]


def test_a_resume_from_an_older_checkpoint_drops_the_steps_it_replays(run_copy):
    # The run logged steps 1-12; resuming step 3 replays 4-12: each must appear once, as replayed.
    run(["--run-dir", run_copy, "--resume", run_copy / "checkpoints" / "step-00000003.pt", "--max-steps", 9])
    rows = [json.loads(l) for l in (run_copy / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 10))
    ck = load(run_copy / "checkpoints" / "last.pt")
    assert [r["loss"] for r in rows if "loss" in r] == pytest.approx(ck["history"]["train_loss"].tolist())
    tb = tb_scalars(run_copy / "tb")
    assert [s for s, _ in tb["train/loss"]] == list(range(1, 10))
    assert [v for _, v in tb["train/loss"]] == pytest.approx(ck["history"]["train_loss"].tolist(), rel=1e-6)
    # The earlier resume's mark (step 6) lies after the new resume point: dropped with the replayed steps.
    assert [s for s, _ in tb["run/resumed_at_step"]] == [3]
    assert [r["step"] for r in rows if r.get("event") == "resume"] == [3]


def test_a_new_run_over_a_set_aside_one_keeps_its_logs_beside(run_copy):
    run(["--run-dir", run_copy, "--resume", "never", "--force", "--max-steps", 2])
    aside = list(run_copy.glob("metrics.jsonl.old-*"))
    assert len(aside) == 1 and len(list(run_copy.glob("checkpoints.old-*"))) == 1
    old_rows = [json.loads(l) for l in aside[0].read_text().splitlines()]
    assert [r["step"] for r in old_rows if "loss" in r] == list(range(1, 13))
    rows = [json.loads(l) for l in (run_copy / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]
    tb_aside = list(run_copy.glob("tb.old-*"))
    assert len(tb_aside) == 1 and len(list(tb_aside[0].iterdir())) == 2 and len(list((run_copy / "tb").iterdir())) == 1
    assert [s for s, _ in tb_scalars(run_copy / "tb")["train/loss"]] == [1, 2]


# --- plot ------------------------------------------------------------------------------------

def test_plot_works_from_the_checkpoint_alone(evaluated, tmp_path):
    run_dir = tmp_path / "r"
    shutil.copytree(evaluated, run_dir)
    shutil.rmtree(run_dir / "tb")
    os.remove(run_dir / "metrics.jsonl")
    for target in (run_dir, run_dir / "checkpoints" / "step-00000067.pt"):
        out = tmp_path / "p.png"
        p = subprocess.run([str(ROOT / "scripts" / "plot"), str(target), "-o", str(out)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=120)
        assert p.returncode == 0, p.stdout
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20000
    assert "134 steps, 2 evaluations, 1 resume(s)" in subprocess.run(
        [str(ROOT / "scripts" / "plot"), str(run_dir), "-o", str(tmp_path / "q.png")], stdout=subprocess.PIPE,
        text=True).stdout


# --- the command line and the terminal ---------------------------------------------------------

def test_boolean_keys_take_a_separate_value(tmp_path):
    for args, want in ((["--length-bucketing", "false"], False), (["--length-bucketing=false"], False),
                       (["--length-bucketing"], True), (["--length-bucketing", "true", "--max-steps", "2"], True)):
        _, out = run(args + ["--print-config"])
        assert json.loads(out)["length_bucketing"] is want, args


def test_help_lists_every_tool_and_each_tool_has_help():
    _, out, _ = tool("--help", check=0)
    for sub in ("ckpt list", "info", "verify", "diff", "clean", "backup", "export", "trainer predict"):
        assert sub in out
    for args in (["ckpt", "--help"], ["predict", "--help"], ["ckpt", "clean", "--help"], ["ckpt", "export", "-h"]):
        rc, out, _ = tool(*args)
        assert rc == 0 and "usage: trainer" in out, args
    rc, _, err = tool("ckpt", "frobnicate")
    assert rc == 2 and "unknown subcommand 'frobnicate'" in err and "list" in err


@pytest.mark.full  # the progress line on a pseudo-terminal: two one-rank runs of 30 steps for a display
def test_progress_line_redraws_in_place_at_a_terminal_only(tmp_path):
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "OMPI_COMM_WORLD_RANK")}
    p = subprocess.Popen([TRAINER, "--config", TINY, "--run-dir", str(tmp_path / "a"), "--max-steps", "30"],
                         stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    p.wait(timeout=120)
    os.close(leader)
    text = seen.decode(errors="replace")
    assert p.returncode == 0, text[-2000:]
    redraws = [l for l in text.split("\r") if l.startswith("[") and "ETA" in l]
    assert len(redraws) >= 20 and "\x1b[K" in text  # one line redrawn per step, erased to its end
    assert "step 30/" in text and "samples/s" in text
    # Not a terminal: plain log lines, no carriage returns.
    _, log = run(["--run-dir", tmp_path / "b", "--max-steps", 30])
    assert "\r" not in log and "step 20/" in log
