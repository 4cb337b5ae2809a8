"""``python -m modelpress.benchmarks.worker``: :mod:`modelpress.export.compare.worker` under the benchmarks' name.

Same arguments.

Measures one model in a fresh process, so its peak RSS is its own; ``--help`` lists the arguments.
"""

from __future__ import annotations

from modelpress.export.compare.worker import main

if __name__ == "__main__":
    raise SystemExit(main())
