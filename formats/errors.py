"""The project's one exception hierarchy.

Every error a user can cause (a bad image, a missing spec, a file that is not a model) is a
``RuntimeToolkitError``: CLIs print its message and exit non-zero without a traceback. The
message names the input, what was expected, what was found and what to do. It is the root for
every package (train, export, calibration, engine and benchmarks derive their errors from it), so
a CLI catches this one type (plus ``OSError`` where it reports file-system failures itself).
"""

from __future__ import annotations


class RuntimeToolkitError(Exception):
    """Base class of every user-facing runtime error."""


class SpecError(RuntimeToolkitError):
    """A ModelSpec is missing, unreadable or invalid."""


class InputError(RuntimeToolkitError):
    """One input (an image file or an array) cannot be turned into a model input."""


class ModelLoadError(RuntimeToolkitError):
    """A model file cannot be loaded by the chosen backend."""


class BackendInputError(RuntimeToolkitError):
    """Tensors passed to ``Backend.infer`` do not match the model's I/O table."""


class ArtifactNameError(RuntimeToolkitError, ValueError):
    """A model name that cannot become file names (``formats.artifacts``): empty, or a path."""
