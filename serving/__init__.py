"""Serving on Triton Inference Server: the python-backend model, the server, its install, `edge serve`, and
repository export. Device side: imports only formats and runtime.
"""
