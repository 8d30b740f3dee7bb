"""The lean, torch-free deploy package: ModelSpec, preprocessing, backends, CLIs.

Imports only numpy, Pillow and, lazily, one backend library. Never torch, onnx, or the
toolkit's other packages (a subprocess test proves it).
"""

__version__ = "0.1.0"
