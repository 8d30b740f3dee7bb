"""Moved: the engine builder is ``python -m engine`` (package ``engine``, the device side of the pipeline).

``python -m export.engine`` keeps working for existing scripts and for the rebuild commands in manifests
written before the move. It is the one import from ``export`` to a later package, allowed by name in
``tests/test_import_graph.py``; nothing imports this module.
"""

import sys

if __name__ == "__main__":
    from engine.__main__ import main

    sys.exit(main())
