"""Help that teaches: every parser of the ``edge`` table (sub-commands included) says ``edge <cmd>`` in its usage
line, ends with examples that parse, gives every option a help text and shows every default that says something.

The parsers are built in this process (no subprocess per command): building one imports its module, which for the
training commands means torch, so this runs in the training venv.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
from collections.abc import Iterator

import pytest

from edge.commands import COMMANDS
from formats.cli import CommandParser, HelpFormatter


def _walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _walk(child)


def _parsers() -> list[argparse.ArgumentParser]:
    found = []
    for command in COMMANDS:
        module = importlib.import_module(command.module)
        assert hasattr(module, "build_parser"), f"{command.module}: no build_parser() (edge {command.name})"
        top = module.build_parser()
        assert top.prog == f"edge {command.name}", (command.module, top.prog)
        found.extend(_walk(top))
    return found


PARSERS = _parsers()
IDS = [p.prog for p in PARSERS]


@pytest.mark.parametrize("parser", PARSERS, ids=IDS)
def test_usage_says_edge_and_the_shared_formatter_is_used(parser):
    assert parser.format_usage().startswith(f"usage: {parser.prog}"), parser.format_usage()
    assert parser.prog.startswith("edge ") and "python -m" not in parser.format_usage()
    assert isinstance(parser, CommandParser) and parser.formatter_class is HelpFormatter


@pytest.mark.parametrize("parser", PARSERS, ids=IDS)
def test_examples_epilog_whose_own_lines_parse(parser):
    """The examples are real command lines: each one for this parser parses (no stale option names)."""
    assert parser.epilog and parser.epilog.startswith("examples:\n"), parser.prog
    ours = [shlex.split(line, comments=True) for line in parser.epilog.splitlines()[1:]]
    words = parser.prog.split()
    ours = [argv for argv in ours if argv[: len(words)] == words]
    assert ours, f"{parser.prog}: no example runs {parser.prog}"
    for argv in ours:
        try:
            parser.parse_args(argv[len(words) :])
        except SystemExit:
            pytest.fail(f"{parser.prog}: example does not parse: {shlex.join(argv)}")
    assert "examples:" in parser.format_help()


@pytest.mark.parametrize("parser", PARSERS, ids=IDS)
def test_every_option_has_help_and_shows_its_default(parser):
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = action.option_strings[0] if action.option_strings else action.dest
        assert action.help, f"{parser.prog} {name}: no help text"
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            shown = HelpFormatter(parser.prog)._get_help_string(action) % {"default": action.default}
            assert "default" in shown.lower(), f"{parser.prog} {name}: default {action.default!r} not shown"


def test_the_formatter_shows_a_default_once_and_hides_none_and_flags():
    parser = CommandParser(prog="edge x")
    parser.add_argument("--epochs", type=int, default=4, help="passes over the data")
    parser.add_argument("--batch", type=int, default=32, help="per call (default 32)")
    parser.add_argument("--out", default=None, help="output folder (beside the model when not given)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    text = " ".join(parser.format_help().split())
    assert "passes over the data (default: 4)" in text
    assert "per call (default 32)" in text and "(default: 32)" not in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_edge_stream_is_gone_and_bench_stream_stays():
    names = {c.name for c in COMMANDS}
    assert "stream" not in names and "bench" in names
    bench = next(p for p in PARSERS if p.prog == "edge bench stream")
    assert "--streams" in bench.format_help()
