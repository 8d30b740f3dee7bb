"""Engines: ONNX → TensorRT plan on the device, with manifest, golden I/O, engine cache and deploy bundles.

The device side of the pipeline (DESIGN.md): it runs on a Jetson, so it imports only ``runtime``,
numpy, onnx and TensorRT (``tensorrt`` or ``tensorrt_rtx``); tqdm is used for build progress when it is
installed and a terminal is attached, never required. ``python -m engine`` builds a plan;
``python -m engine.bundle`` packs what a device needs and verifies it there.
"""
