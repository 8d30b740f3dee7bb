"""``edge <command> [args]``: every tool of the toolkit behind one command (``python -m edge`` too).

``edge <command> --help`` prints that tool's own help; ``edge -v``/``edge --quiet`` before the command set the
log level (DEBUG/WARNING instead of INFO) of everything it runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from edge.commands import BY_NAME, COMMANDS, Exit1
from formats.cli import EXIT_OK, EXIT_USER_ERROR, describe, dumps, exit_code_table, safe
from formats.logs import LEVEL_ENV


def build_parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {c.name:<13} {c.summary()}" for c in COMMANDS)
    checks = ", ".join(c.name for c in COMMANDS if c.exit_1 in (Exit1.CHECKS, Exit1.BOTH))
    inputs = ", ".join(c.name for c in COMMANDS if c.exit_1 in (Exit1.INPUTS, Exit1.BOTH))
    epilog = (
        f"commands:\n{listing}\n\nexit status (every command):\n{exit_code_table()}\n"
        f"  1 means some inputs bad for: {inputs}\n  1 means a check missed for: {checks}"
    )
    parser = argparse.ArgumentParser(
        prog="edge", description=describe(__doc__), epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--quiet", action="store_true", help="warnings and errors only")
    parser.add_argument("command", choices=[c.name for c in COMMANDS], metavar="command", help="see the list below")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``edge``'s own options up to the command; everything after it belongs to the command."""
    args = list(sys.argv[1:] if argv is None else argv)
    split = next((i for i, a in enumerate(args) if not a.startswith("-")), len(args))
    parser = build_parser()
    ours = parser.parse_args(args[: split + 1])  # --help, a missing or unknown command: argparse exits 0 / 2
    if ours.verbose or ours.quiet:
        os.environ[LEVEL_ENV] = "DEBUG" if ours.verbose else "WARNING"  # read by the command's error boundary
    command = BY_NAME[ours.command]
    rest = args[split + 1 :]
    try:
        module = importlib.import_module(command.module)
    except ImportError as exc:
        message = (
            f"edge {command.name}: cannot import {exc.name or exc}: install it with `pip install '.[{command.needs}]'`"
        )
        print(f"error: {safe(message)}", file=sys.stderr)
        if "--json" in rest:
            print(dumps({"ok": False, "exit_code": EXIT_USER_ERROR, "error": message}))
        return EXIT_USER_ERROR
    return int(module.main(rest) or EXIT_OK)


if __name__ == "__main__":
    sys.exit(main())
