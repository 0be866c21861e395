"""The documentation agrees with the code: docs/configuration.md's reference is what the config table
generates (via `trainer --help`), README stays a front page that indexes every docs/ page, and every
relative link between them resolves."""
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, TRAINER

GENERATOR = ROOT / "scripts" / "config-reference"
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def test_configuration_reference_is_generated_from_the_config_table():
    assert Path(TRAINER).is_file(), (
        f"no trainer binary at {TRAINER}: build it (scripts/build) or set TRAINER; "
        "the configuration reference is generated from its --help")
    p = subprocess.run([sys.executable, str(GENERATOR), "--check"], env=dict(os.environ, TRAINER=TRAINER),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert p.returncode == 0, (
        "docs/configuration.md differs from the config table (src/config/config.cpp, as `trainer --help` "
        "prints it): run scripts/config-reference and commit the result\n" + p.stdout[-6000:])


def test_configuration_reference_lists_every_key_of_help():
    help_text = subprocess.run([TRAINER, "--help"], stdout=subprocess.PIPE, text=True, timeout=60, check=True).stdout
    doc = (DOCS / "configuration.md").read_text()
    flags = re.findall(r"^  --([a-z0-9-]+)", help_text, re.M)
    not_keys = {"config", "eval", "ensemble", "debug", "print-config", "dry-run", "help", "version"}
    keys = [f.replace("-", "_") for f in flags if f not in not_keys]
    assert len(keys) >= 50
    missing = [k for k in keys if f"| `{k}` |" not in doc]
    assert not missing, f"keys of --help missing from docs/configuration.md: {missing}"


def test_readme_is_a_front_page_that_indexes_every_docs_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 250, "README.md is a front page: at most 250 lines (move details to docs/)"
    pages = sorted(p.name for p in DOCS.glob("*.md"))
    assert len(pages) >= 5
    unlinked = [p for p in pages if f"(docs/{p})" not in text]
    assert not unlinked, f"README's index does not link {unlinked}"
    for p in pages:
        assert "](../README.md" in (DOCS / p).read_text(), f"docs/{p} does not link back to README"


def test_relative_links_resolve():
    broken = []
    for page in [README] + sorted(DOCS.glob("*.md")):
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#")[0]
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "links to missing files: " + ", ".join(broken)
