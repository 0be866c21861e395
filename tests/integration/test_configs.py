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
