"""Inference backends sharing one lifecycle (see ``base.Backend``). Heavy libraries load lazily."""

from runtime.backends.base import Backend, TensorInfo

__all__ = ["Backend", "TensorInfo"]
