"""Every config the project ships resolves: a typo in configs/*.json (a key the trainer does not
know, a value out of range) would otherwise surface only on the machine that runs it, a GPU
included."""
import json
import subprocess

import pytest

from conftest import ROOT, TRAINER

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
