"""Issue 3: the trainer runs alone, under mpirun and under torchrun; DDP keeps replicas identical."""
import json
import re
import subprocess

import pytest

from conftest import ROOT, TRAINER, TINY, load, run


@pytest.mark.parametrize("launcher", ["single", "mpirun", "torchrun"])
def test_runs_and_writes_a_checkpoint(tmp_path, launcher):
    code, out = run(["--run-dir", tmp_path, "--max-steps", 5], launcher=launcher)
    ranks = 1 if launcher == "single" else 2
    assert f"joined {ranks} rank(s)" in out
    ck = load(tmp_path / "checkpoints" / "last.pt")
    assert ck["train_state"]["global_step"] == 5
    assert ck["world_size"] == ranks
    assert len(ck["rng"]["cpu"]) == ranks
    # Every save hashes each rank's weights and compares them across ranks.
    assert re.search(rf"weights xxh3:[0-9a-f]{{16}} identical on {ranks} rank\(s\)", out), out


def test_ranks_train_on_disjoint_shards_and_end_identical(tmp_path):
    trace = tmp_path / "trace"
    code, out = run(["--run-dir", tmp_path / "r", "--max-steps", 20], launcher="mpirun",
                    env={"RESUMABLE_TEST_TRACE_SAMPLES": str(trace)})
    shards = []
    for r in range(2):
        ids = []
        for line in (tmp_path / f"trace.rank{r}").read_text().splitlines():
            ids += [int(x) for x in line.split()[2:]]
        shards.append(set(ids))
    assert shards[0] and shards[1]
    assert not shards[0] & shards[1], "ranks saw the same samples"
    assert "identical on 2 rank(s)" in out


def test_help_lists_every_key_and_exit_codes():
    p = subprocess.run([TRAINER, "--help"], stdout=subprocess.PIPE, text=True)
    assert p.returncode == 0
    for key in ("--d-model", "--max-steps", "--run-dir", "--resume", "--save-every-steps", "--keep-last"):
        assert key in p.stdout
    assert "75 stopped by a signal" in p.stdout


def test_print_config_resolves_file_and_flags():
    p = subprocess.run([TRAINER, "--config", TINY, "--lr", "0.01", "--print-config"], stdout=subprocess.PIPE, text=True)
    cfg = json.loads(p.stdout)
    assert cfg["lr"] == 0.01 and cfg["d_model"] == 64


def test_eval_reports_test_metrics(tmp_path):
    run(["--run-dir", tmp_path, "--epochs", 1])
    code, out = run(["--run-dir", tmp_path, "--eval"])
    line = [l for l in out.splitlines() if l.startswith("{")][-1]
    result = json.loads(line)
    for split in ("validation", "test"):
        assert result[split]["words"] == 400
        assert 0 <= result[split]["wer"] <= 1 and 0 <= result[split]["per"]
    assert result["checkpoint"].endswith("best.pt")
    code, out = run(["--run-dir", tmp_path, "--eval", "--beam-size", 3, "--max-eval-words", 50])
    assert "beam 3" in out


# Full only: --eval --ensemble end to end (members of another architecture, the refusals); the
# averaging itself is unit-tested (decoding_test) and test_tools' predict uses an ensemble.
@pytest.mark.full
def test_eval_of_an_ensemble_averages_checkpoints_of_other_runs(tmp_path):
    # Two runs of tiny, another seed and a narrower model for the second: members may differ in
    # architecture, not in vocabulary.
    run(["--run-dir", tmp_path / "a", "--epochs", 1])
    run(["--run-dir", tmp_path / "b", "--epochs", 1, "--seed", 7, "--d-model", 32, "--heads", 2])
    a, b = (str(tmp_path / d / "checkpoints" / "best.pt") for d in ("a", "b"))

    def result(args):
        code, out = run(["--run-dir", tmp_path / "a", "--eval"] + args)
        return json.loads([l for l in out.splitlines() if l.startswith("{")][-1]), out

    alone, _ = result([])
    both, out = result(["--ensemble", b])
    assert both["ensemble"] == [b] and both["checkpoint"] == a
    assert "ensemble member " + b + ": d_model=32 heads=2" in out and "+ 1 more (ensemble)" in out
    assert both["test"]["words"] == alone["test"]["words"] == 400
    assert both["test"]["loss"] != alone["test"]["loss"]  # the second model took part
    # A model with itself is the model alone (up to the rounding of the average).
    twice, _ = result(["--ensemble", a])
    for split in ("validation", "test"):
        assert abs(twice[split]["wer"] - alone[split]["wer"]) <= 1 / 400
        assert twice[split]["loss"] == pytest.approx(alone[split]["loss"], rel=1e-5)

    # Bad input: one line each, naming the flag or the file.
    code, out = run(["--run-dir", tmp_path / "a", "--ensemble", b], check=False)
    assert code == 2 and "--ensemble: only with --eval" in out
    code, out = run(["--run-dir", tmp_path / "a", "--eval", "--ensemble", str(tmp_path / "missing.pt")], check=False)
    assert code != 0 and "missing.pt" in out
    # Words of a-m only: a vocabulary without most letters.
    words = [l for l in open(ROOT / "data" / "cmudict.dict") if set(l.split(" ")[0]) <= set("abcdefghijklm")]
    (tmp_path / "small.dict").write_text("".join(words[:600]))
    run(["--run-dir", tmp_path / "c", "--max-steps", 2, "--data", tmp_path / "small.dict", "--max-train-words", 0])
    c = str(tmp_path / "c" / "checkpoints" / "last.pt")
    code, out = run(["--run-dir", tmp_path / "a", "--eval", "--ensemble", c], check=False)
    assert code != 0 and f"{c}: --ensemble: its vocabularies" in out and "same dictionary" in out


# Full only: a right-to-left model end to end (train, eval, rerank, predict --score, a resume the
# other way refused); its word order and reranking are unit-tested (decoding_test).
@pytest.mark.full
def test_a_right_to_left_model_trains_evaluates_and_reranks_with_a_left_to_right_one(tmp_path):
    run(["--run-dir", tmp_path / "l", "--epochs", 1])
    run(["--run-dir", tmp_path / "r", "--epochs", 1, "--target-order", "right_to_left"])
    l, r = (str(tmp_path / d / "checkpoints" / "best.pt") for d in ("l", "r"))
    assert load(r)["config"]["target_order"] == "right_to_left"
    assert load(l)["config"]["target_order"] == "left_to_right"

    def result(run_dir, args=()):
        code, out = run(["--run-dir", run_dir, "--eval", "--beam-size", 2, *args])
        return json.loads([x for x in out.splitlines() if x.startswith("{")][-1])

    # Like every architecture key, the direction is named to evaluate the run (the saved config is checked).
    r2l = ["--target-order", "right_to_left"]
    alone_l, alone_r = result(tmp_path / "l"), result(tmp_path / "r", r2l)
    assert alone_r["test"]["words"] == 400 and alone_r["test"]["per"] > 0  # word order: unit tests (decoding_test)
    # Both directions: teacher-forced loss is the first member's direction's, decoding reranks.
    both = result(tmp_path / "l", ["--ensemble", r])
    assert both["ensemble"] == [r] and both["test"]["words"] == 400
    assert both["test"]["loss"] == pytest.approx(alone_l["test"]["loss"], rel=1e-6)
    other_way = result(tmp_path / "r", ["--ensemble", l, *r2l])
    assert other_way["test"]["loss"] == pytest.approx(alone_r["test"]["loss"], rel=1e-6)
    # Which member comes first changes the loss, not the decoding.
    assert other_way["test"]["wer"] == both["test"]["wer"] and other_way["test"]["per"] == both["test"]["per"]

    # predict: hypotheses in word order, scored the same way when given back.
    for ensemble in ([], ["--ensemble", l]):
        p = subprocess.run([TRAINER, "predict", "--checkpoint", r, *ensemble, "--nbest", "2", "hello", "world"],
                           stdout=subprocess.PIPE, text=True)
        rows = [x.split("\t") for x in p.stdout.splitlines()]
        assert p.returncode == 0 and [x[0] for x in rows] == ["hello", "hello", "world", "world"]
        given = "".join(f"{w}\t{ph}\n" for w, ph, _ in rows)
        q = subprocess.run([TRAINER, "predict", "--checkpoint", r, *ensemble, "--score"], input=given,
                           stdout=subprocess.PIPE, text=True)
        scored = [x.split("\t") for x in q.stdout.splitlines()]
        assert q.returncode == 0 and [x[:2] for x in scored] == [x[:2] for x in rows]
        assert [float(x[2]) for x in scored] == pytest.approx([float(x[2]) for x in rows], abs=2e-4)

    # The direction is the model's: a resume that reads the other way is refused.
    code, out = run(["--run-dir", tmp_path / "r", "--epochs", 2], check=False)
    assert code != 0 and 'target_order: saved "right_to_left", given "left_to_right"' in out


def test_two_ranks_train_like_one_on_the_whole_batch(tmp_path):
    # The reducer's average over ranks of per-rank gradients (each normalized by the global token
    # count) is the gradient of the whole global batch: without dropout, 2 ranks must follow the
    # 1-rank run up to the order of float sums (about 1e-6 here after 30 steps). A wrong division
    # puts them far apart (4e-1 with the world-size factor of the loss dropped).
    args = ["--max-steps", 30, "--dropout", 0, "--async-save", "false"]
    run(["--run-dir", tmp_path / "one"] + args)
    run(["--run-dir", tmp_path / "two"] + args, launcher="mpirun")
    one, two = (load(tmp_path / d / "checkpoints" / "last.pt") for d in ("one", "two"))
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert one["train_state"]["global_step"] == two["train_state"]["global_step"] == 30
    worst = 0.0
    for name, w in one["model"].items():
        v = two["model"][name]
        if name.endswith("kv.bias"):
            # The keys' bias adds the same q.b to every score of a query, which softmax ignores:
            # its gradient is zero but for rounding, and Adam scales that noise up to lr-sized
            # steps. Only the values' half is compared.
            w, v = w[w.shape[0] // 2:], v[v.shape[0] // 2:]
        worst = max(worst, (w.double() - v.double()).abs().max().item() / max(1e-3, w.abs().max().item()))
    assert worst < 1e-4, f"2 ranks drifted from 1 rank by {worst:.2e} (relative)"
