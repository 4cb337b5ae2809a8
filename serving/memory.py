"""Process memory readings used to attribute memory to a model version at load."""

from __future__ import annotations

import os
import resource
from pathlib import Path


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc), else the peak RSS as a fallback."""
    statm = Path("/proc/self/statm")
    if statm.exists():
        return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
