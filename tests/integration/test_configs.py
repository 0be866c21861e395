"""Every config the project ships resolves and trains on this CPU, and on one held to AVX2: a typo in
configs/*.json (a key the trainer does not know, a value out of range) or a kernel set the CPU lacks
would otherwise surface only on the machine that runs it, a GPU included."""
import json
import os
import subprocess

import pytest

from conftest import ROOT, TRAINER, load

CONFIGS = sorted((ROOT / "configs").glob("*.json"))


def test_the_shipped_configs_are_there():
    assert {"tiny.json", "base.json", "gpu.json"} <= {c.name for c in CONFIGS}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_a_shipped_config_resolves(config):
    p = subprocess.run([TRAINER, "--config", config, "--print-config"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stdout
    resolved = json.loads(p.stdout)
    for key, value in json.loads(config.read_text()).items():
        assert resolved[key] == value, f"{config.name}: {key}"


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


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
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
