"""README.md and docs/ stay true: their programs are the examples (which run, see
``test_examples``), their config is valid, and their shell sessions print what they show."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

from rtbus.cli import main

ROOT = Path(__file__).parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(language: str, document: Path | None = None) -> list[tuple[str, str]]:
    """``(where, text)`` of every ``language`` code block in the documents."""
    found = []
    for path in [document] if document else DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            if match[1] == language:
                line = text.count("\n", 0, match.start()) + 1
                found.append((f"{path.relative_to(ROOT)}:{line}", match[2]))
    return found


def is_excerpt(block: str, program: str) -> bool:
    """Whether ``block`` is consecutive lines of ``program``, both dedented."""
    wanted = textwrap.dedent(block).rstrip("\n")
    lines = program.splitlines()
    size = len(wanted.splitlines())
    windows = ("\n".join(lines[i : i + size]) for i in range(len(lines) - size + 1))
    return any(textwrap.dedent(window) == wanted for window in windows)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith(("RTBUS_", "OPENAI_", "AZURE_OPENAI_"))]:
        monkeypatch.delenv(name)


@pytest.mark.parametrize(("where", "code"), blocks("python"))
def test_every_program_shown_is_an_example_that_runs(where: str, code: str) -> None:
    programs = [path.read_text(encoding="utf-8") for path in EXAMPLES]
    assert any(is_excerpt(code, program) for program in programs), (
        f"{where}: not an excerpt of any examples/*.py; make it one, so a test runs it"
    )


def test_the_readme_config_is_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-readme-example-key")
    [(_, toml)] = blocks("toml", ROOT / "README.md")
    path = tmp_path / "rtbus.toml"
    path.write_text(toml, encoding="utf-8")
    assert main(["config", "check", str(path)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize(("where", "session"), blocks("console"))
def test_every_shell_session_prints_what_it_shows(
    where: str,
    session: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    command, *shown = session.splitlines()
    args = command.removeprefix("$ rtbus ").split()
    # A file the session names is either the repository's or shown beside it (`# NAME`).
    files = {t.split("\n", 1)[0].removeprefix("# "): t for _, t in blocks("toml")}
    for name in args:
        if name in files:
            (tmp_path / name).write_text(files[name], encoding="utf-8")
    monkeypatch.chdir(tmp_path if any(name in files for name in args) else ROOT)
    main(args)
    out, err = capsys.readouterr()
    assert (out + err).splitlines() == shown, where
