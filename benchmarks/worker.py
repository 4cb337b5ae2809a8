"""``python -m benchmarks.worker``: :mod:`export.compare.worker` under the benchmarks' name, same arguments.

Measures one model in a fresh process, so its peak RSS is its own; ``--help`` lists the arguments.
"""

from __future__ import annotations

from export.compare.worker import main

if __name__ == "__main__":
    raise SystemExit(main())
