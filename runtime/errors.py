"""The runtime's one exception hierarchy.

Every error a user can cause (a bad image, a missing spec, a file that is not a model) is a
``RuntimeToolkitError``: CLIs print its message and exit non-zero without a traceback. The
message names the input, what was expected, what was found and what to do.
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
