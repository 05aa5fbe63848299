"""What a newcomer reads first: ``rtbus --version`` and every command's help."""

from __future__ import annotations

import argparse
from importlib.metadata import version

import pytest

from rtbus.cli import main
from rtbus.cli._main import build_parser
from rtbus.cli._sim import fault_kinds


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser by its name (``config check`` included)."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        found[name] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    walk(child, f"{name} {sub}".strip())

    walk(build_parser(), "")
    return found


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"rtbus {version('rtbus')}\n"


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_option_says_what_it_does(name: str) -> None:
    parser = commands()[name]
    for action in parser._actions:
        if action.option_strings and action.dest not in {"help", "version"}:
            assert action.help, f"rtbus {name} {action.option_strings[0]} has no help"
            # A default worth knowing is named in the help.
            if action.default not in (None, False, [], argparse.SUPPRESS):
                assert "default" in action.help, f"{name} {action.option_strings[0]}"
    text = parser.format_help()
    assert "``" not in text  # reST markup means nothing in a terminal


def test_sim_help_is_rtbus_sim_and_names_every_fault_kind(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["sim", "--help"])
    text = capsys.readouterr().out
    assert text.startswith("usage: rtbus sim ")
    assert "python -m" not in text
    for kind in fault_kinds():
        assert f"\n  {kind}" in text, kind
