"""Small helpers shared by the command-line tools."""

from __future__ import annotations


def describe(doc: str | None) -> str:
    """A module docstring's first paragraph as plain argparse help text (no reST backquotes)."""
    return (doc or "").split("\n\n")[0].replace("``", "").replace("\n", " ").strip()
