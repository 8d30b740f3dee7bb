"""Benchmarks and the end-to-end demo: latency and accuracy reports. May import every other package."""
