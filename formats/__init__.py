"""File formats and shared plumbing, numpy only.

Artifact names, the one writer and opener, calibration-set/run/cache and engine-manifest formats, the bundle
reader, errors, the CLI error boundary, logging. Every other package may import it; it imports none of ours.
"""
