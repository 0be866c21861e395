"""Every config the project ships resolves and trains on this CPU, and on one held to AVX2: a typo in
configs/*.json (a key the trainer does not know, a value out of range) or a kernel set the CPU lacks
would otherwise surface only on the machine that runs it, a GPU included."""
import json
import os
import subprocess

import pytest

from conftest import ROOT, TRAINER, load

CONFIGS = sorted((ROOT / "configs").glob("*.json"))
TINY_CONFIG = ROOT / "configs" / "tiny.json"


def test_the_shipped_configs_are_there():
    assert {"tiny.json", "base.json", "gpu.json", "gpu-preemptible.json"} <= {c.name for c in CONFIGS}


def help_text():
    p = subprocess.run([TRAINER, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60,
                       cwd="/")  # the configs are found beside the binary, not in the working directory
    assert p.returncode == 0, p.stdout
    return p.stdout


def test_each_config_says_what_it_is_for_and_help_lists_it():
    text = help_text()
    listing = text[text.index("\nConfigs (--config "):]
    for config in CONFIGS:
        description = json.loads(config.read_text()).get("description")
        assert isinstance(description, str) and len(description) > 20, config.name
        assert f"\n  {config.stem} " in listing, config.name
        assert description.split()[0] in listing, config.name


def test_help_groups_the_config_flags_by_topic():
    text = help_text()
    titles = ["Run:", "Model (", "Data (", "Schedule and optimizer:", "Evaluation and best.pt:",
              "Checkpointing and resume:", "Stopping early (", "Distributed and hardware:", "Logging:",
              "Tools (each has --help):", "Configs ("]
    at = [text.index("\n" + t) for t in titles]
    assert at == sorted(at), "topics out of order"
    section = lambda flag: max(i for i, a in enumerate(at) if a < text.index("\n  " + flag))
    assert titles[section("--d-model N")] == "Model ("
    assert titles[section("--max-train-words N")] == "Data ("
    assert titles[section("--save-every-minutes X")] == "Checkpointing and resume:"
    assert titles[section("--async-save, --no-async-save")] == "Checkpointing and resume:"
    assert titles[section("--max-steps N")] == "Stopping early ("
    assert titles[section("--bucket-mib N")] == "Distributed and hardware:"
    assert titles[section("--log-every-steps N")] == "Logging:"
    assert max(len(line) for line in text.splitlines()) <= 100


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_a_shipped_config_resolves(config):
    p = subprocess.run([TRAINER, "--config", config, "--print-config"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stdout
    resolved = json.loads(p.stdout)  # also: no warning printed (an old key name would warn)
    for key, value in json.loads(config.read_text()).items():
        if key != "description":  # says what the file is for: not a setting
            assert resolved[key] == value, f"{config.name}: {key}"


def print_config(*args, cwd=ROOT):
    p = subprocess.run([TRAINER, *map(str, args), "--print-config"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60, cwd=cwd)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout), p.stderr


def test_boolean_flags_take_no_key_and_equals_false():
    for args in (["--no-async-save"], ["--async-save=false"], ["--async-save", "false"], ["--async-save", "0"]):
        resolved, err = print_config(*args)
        assert resolved["async_save"] is False and err == "", args
    resolved, _ = print_config("--config", TINY_CONFIG, "--no-async-save", "--async-save")
    assert resolved["async_save"] is True  # the last one wins


def test_old_flags_and_config_keys_still_work_with_a_one_line_warning(tmp_path):
    old = tmp_path / "old.json"
    old.write_text('{"limit_words": 300, "eval_limit": 50, "resume_from": "never", "bucket_mb": 8, "keep_every": 4}')
    resolved, err = print_config("--config", old, "--timeout-s", 30, "--save-timeout-s", 60, "--deadline-margin-s", 5)
    assert (resolved["max_train_words"], resolved["max_eval_words"], resolved["resume"]) == (300, 50, "never")
    assert (resolved["bucket_mib"], resolved["keep_every_steps"], resolved["timeout_seconds"]) == (8, 4, 30)
    assert resolved["save_timeout_seconds"] == 60 and resolved["deadline_margin_seconds"] == 5
    assert not {"limit_words", "eval_limit", "resume_from", "bucket_mb", "keep_every", "timeout_s"} & set(resolved)
    lines = err.splitlines()
    assert len(lines) == 8 and all(l.startswith("trainer: warning: ") for l in lines), err
    assert f"{old}: key 'limit_words' is now 'max_train_words' (the old name still works in this release)" in err
    assert "command line: --timeout-s is now --timeout-seconds" in err
    # An old and a new spelling of one key in one file: refused, saying which to keep.
    both = tmp_path / "both.json"
    both.write_text('{"limit_words": 300, "max_train_words": 200}')
    p = subprocess.run([TRAINER, "--config", both, "--print-config"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60)
    assert p.returncode == 2 and "keep only 'max_train_words'" in p.stdout, p.stdout


def test_a_dashed_config_key_is_pointed_to_its_key(tmp_path):
    bad = tmp_path / "dashed.json"
    bad.write_text('{"save-every-minutes": 5}')
    p = subprocess.run([TRAINER, "--config", bad, "--print-config"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60)
    assert p.returncode == 2 and "'save_every_minutes'" in p.stdout, p.stdout


def test_amp_auto_uses_bf16_on_a_cpu_only_where_it_has_native_bf16(tmp_path):
    # base.json's amp is auto: bf16 autocast without the CPU's own bf16 instructions made its steps
    # 3.5 times slower than fp32. The kernel's view of the CPU decides what to expect.
    flags = set()
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            flags |= set(line.split(":", 1)[1].split())
    native = bool(flags & {"avx512_bf16", "amx_bf16"})
    p = subprocess.run([TRAINER, "--config", ROOT / "configs" / "tiny.json", "--amp", "auto", "--device", "cpu",
                        "--max-steps", "2", "--run-dir", str(tmp_path)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-3000:]
    line = [l for l in p.stdout.splitlines() if "amp auto:" in l]
    assert line, p.stdout[-3000:]
    assert ("amp auto: bf16" in line[0]) == native and ("amp auto: none" in line[0]) == (not native), line[0]
    resolved = json.loads(subprocess.run([TRAINER, "--config", ROOT / "configs" / "base.json", "--print-config"],
                                         stdout=subprocess.PIPE, text=True, cwd=ROOT).stdout)
    assert resolved["amp"] == "auto"


def cpu_flags():
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


HAS_AVX512 = {"avx512f", "avx512vl", "avx512bw", "avx512dq"} <= cpu_flags()
# What a CPU with AVX2 but no AVX-512 runs (AMD EPYC 7002/7003): ATen's kernel set, and MKL's and
# oneDNN's own dispatch held to AVX2 too, since they choose apart from ATen.
AVX2_ONLY = {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def train(config, run_dir, *flags, steps=20, env=None):
    # A GPU recipe on the CPU: the device and a small batch are the only changes (gpu.json's model
    # at batch 64 took 100 s for 20 steps on a busy 2-core machine).
    p = subprocess.run([TRAINER, "--config", config, "--device", "cpu", "--batch-size", "16", "--max-steps", str(steps),
                        "--run-dir", str(run_dir), *flags], env=dict(os.environ, **(env or {})),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, cwd=ROOT)
    return p.returncode, p.stdout


# Fast scope: tiny.json. Full only: the larger models of the other configs (2 to 3 minutes each);
# test_a_shipped_config_resolves still checks every config's keys and values in both scopes.
@pytest.mark.parametrize("config", [c if c.name == "tiny.json" else pytest.param(c, marks=pytest.mark.full)
                                    for c in CONFIGS], ids=lambda c: c.name)
def test_a_shipped_config_trains_on_this_cpu_and_on_avx2(config, tmp_path):
    # Every config leaves the kernel set to auto: the best this CPU runs, named in the log.
    assert json.loads(config.read_text()).get("cpu_kernels", "auto") == "auto", config.name
    code, out = train(config, tmp_path / "here")
    assert code == 0, out[-3000:]
    best = "avx512" if HAS_AVX512 else "avx2"
    assert f"CPU kernels {best} (auto" in out, out[-3000:]
    assert load(tmp_path / "here" / "checkpoints" / "last.pt")["train_state"]["global_step"] == 20
    # Five steps reach every kernel of a step (forward, backward, optimizer, a save) at a third of the time.
    code, out = train(config, tmp_path / "avx2", "--cpu-kernels", "avx2", steps=5, env=AVX2_ONLY)
    assert code == 0, out[-3000:]
    assert "CPU kernels avx2 (cpu_kernels)" in out, out[-3000:]


def test_a_kernel_set_this_cpu_lacks_is_refused_at_start(tmp_path):
    code, out = train(ROOT / "configs" / "tiny.json", tmp_path / "a", "--cpu-kernels", "avx512")
    if HAS_AVX512:  # the opposite case: the set the CPU has is taken
        assert code == 0, out[-3000:]
        assert "CPU kernels avx512 (cpu_kernels)" in out, out[-3000:]
    else:
        assert code == 2, out[-3000:]
        errors = [l for l in out.splitlines() if "error" in l]
        assert len(errors) == 1 and "cpu_kernels=avx512" in errors[0] and "lacks avx512f" in errors[0], out
        assert not (tmp_path / "a" / "checkpoints").exists()
    # The user's own ATEN_CPU_CAPABILITY is checked the same way; a name ATen does not know is refused.
    code, out = train(ROOT / "configs" / "tiny.json", tmp_path / "b", env={"ATEN_CPU_CAPABILITY": "avx1024"})
    assert code == 2, out[-3000:]
    assert "ATEN_CPU_CAPABILITY=avx1024: expected default, avx2 or avx512" in out, out
    if HAS_AVX512:
        code, out = train(ROOT / "configs" / "tiny.json", tmp_path / "c", env={"ATEN_CPU_CAPABILITY": "avx2"})
        assert code == 0 and "CPU kernels avx2 (ATEN_CPU_CAPABILITY" in out, out[-3000:]
