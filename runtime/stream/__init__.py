"""Video, camera and multi-stream inference (``python -m runtime.infer --engine M SOURCE...``).

``uri`` parses the source syntax (no decoder needed), ``sources`` decodes frames with PyAV (files, image
sequences, V4L2 cameras, network streams) or OpenCV's GStreamer backend, ``pipeline`` runs one decoder
thread per source into bounded queues and one ``DynamicBatcher`` shared by every source, ``sinks`` writes
JSON Lines, annotated video and the summaries, ``cli`` ties them to ``runtime.infer``'s arguments.
PyAV is imported lazily, only when a video source is opened: the image-only runtime does not need it.
"""
