"""The ``edge`` command: one entry point for every tool of the toolkit (``edge --help`` lists them).

The last layer of the package order (runtime → train → export → calibration → engine → benchmarks → edge): it
imports only ``formats.cli`` at start-up and the chosen subcommand's module when it runs, so ``edge infer``,
``edge doctor`` and ``edge build`` work on a device without torch. Every ``python -m …`` entry point keeps
working as it was; ``edge SUB ARGS`` runs the same ``main(ARGS)``.
"""
