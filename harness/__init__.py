"""The comparison harness: backends (PyTorch included) run on the same batches and compared; parity checks.

Training side (PyTorch is imported only by the callers that compare against it).
"""
