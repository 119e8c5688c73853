"""The documentation runs as written: README.md, docs/*.md and export/README.md.

Fast checks: links resolve, Python blocks compile, every shell line names a real command
and real files, and LightningCLI lines parse. The slow test runs every ``bash`` and
``python`` block in a fresh copy of the repository, in document order (README first: its
tour makes the checkpoint the other pages use). ``make`` lines are skipped there: ``make
test`` is what runs this file.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from softzoo.cli import COMMANDS, main
from softzoo.runner import LIGHTNING_COMMANDS

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "export/README.md"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"\]\(([^)\s]+)\)")
REPO_PATH = re.compile(r"^(configs|export|docs|benchmarks|softzoo)/\S+$")


def _blocks(page: Path, language: str) -> list[str]:
    return [code for lang, code in FENCE.findall(page.read_text()) if lang == language]


def _shell_lines(page: Path) -> list[list[str]]:
    lines = []
    for block in _blocks(page, "bash"):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                lines.append(words)
    return lines


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_links_resolve(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "#")):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{_name(page)} links to missing {target}"


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_python_blocks_compile(page: Path) -> None:
    for code in _blocks(page, "python"):
        compile(code, str(page), "exec")


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_shell_lines_name_real_commands_and_files(page: Path) -> None:
    targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M)
    for words in _shell_lines(page):
        program = words[0]
        assert program in ("softzoo", "python", "make"), f"{_name(page)}: {words}"
        if program == "softzoo":
            assert words[1] in COMMANDS, f"{_name(page)}: unknown command in {words}"
        if program == "make":
            assert words[1] in targets, f"{_name(page)}: no make target {words[1]}"
        for word in words[1:]:
            if REPO_PATH.match(word):
                assert (ROOT / word).exists(), f"{_name(page)}: {word} does not exist"


def _lightning_lines() -> list[list[str]]:
    """The LightningCLI lines of the docs, but those whose config an earlier line writes
    under runs/ (``softzoo tune``'s best.yaml): the slow test runs them in order."""
    return [
        words[1:]
        for page in PAGES
        for words in _shell_lines(page)
        if words[0] == "softzoo"
        and words[1] in LIGHTNING_COMMANDS
        and not any(a.startswith("runs/") and a.endswith(".yaml") for a in words)
    ]


@pytest.mark.parametrize("args", _lightning_lines(), ids=" ".join)
def test_lightning_lines_parse(args: list[str], monkeypatch, capsys) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    assert exit_info.value.code == 0, capsys.readouterr().err


def _copy_of_the_repository(folder: Path) -> Path:
    ignore = shutil.ignore_patterns(
        ".venv", ".git", "runs", "lightning_logs", "__pycache__", ".*cache"
    )
    return Path(shutil.copytree(ROOT, folder / "repo", ignore=ignore))


@pytest.mark.slow
def test_every_block_runs_as_written(tmp_path: Path) -> None:
    repo = _copy_of_the_repository(tmp_path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for page in PAGES:
        blocks = [(lang, code) for lang, code in FENCE.findall(page.read_text())]
        for language, code in blocks:
            if language == "bash":
                code = "\n".join(x for x in code.splitlines() if not x.startswith("make "))
                command = ["bash", "-euo", "pipefail", "-c", code]
            elif language == "python":
                command = [sys.executable, "-c", code]
            else:
                continue
            result = subprocess.run(
                command, cwd=repo, env=env, capture_output=True, text=True, timeout=900
            )
            assert result.returncode == 0, (
                f"{_name(page)} block failed:\n{code}\n--- stderr ---\n{result.stderr[-3000:]}"
            )


def _numbers(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+\.\d+(?:e[-+]?\d+)?", line)]


# runs the whole demo (~30 s on 2 cores): `make demo` is the same run
@pytest.mark.slow
def test_the_readme_demo_output_is_what_the_demo_prints(tmp_path) -> None:
    block = next(code for code in _blocks(ROOT / "README.md", "") if "held-out test split" in code)
    result = subprocess.run(
        [sys.executable, "-m", "softzoo.demo", "--root", str(tmp_path / "demo")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    printed = result.stdout.replace(str(tmp_path / "demo"), "runs/demo").splitlines()
    for line in block.strip().splitlines():
        if not line.strip():
            continue
        if line.startswith("parity cpu:"):  # the last digits of the errors differ by host
            assert any(p.startswith(line.split(";")[0]) for p in printed), line
            continue
        label = re.sub(r"\s+-?\d[\d.e+-]*$", "", line)
        match = next((p for p in printed if p.startswith(label)), None)
        assert match is not None, f"the demo no longer prints {line!r}"
        np.testing.assert_allclose(_numbers(match), _numbers(line), rtol=0.02)
    # and nothing of Lightning's that softzoo does not mean to say
    for noise in ("💡 Tip", "dirpath has changed", "LeafSpec"):
        assert noise not in result.stdout + result.stderr


def test_the_demo_with_a_missing_config_says_what_it_takes(tmp_path, capsys) -> None:
    from softzoo.demo import main

    with pytest.raises(SystemExit) as exit_code:
        main(["--config", str(tmp_path / "gaussian.yaml")])
    assert exit_code.value.code == 2
    assert "is not a file, and no shipped config has that name" in capsys.readouterr().err
