"""``python -m serving --repository DIR [--host] [--port] [--workers] [--require-gpu]``."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from serving.server import ServeError, serve
from serving.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving", description="modelpress inference server")
    parser.add_argument("--repository", help="model repository folder (or MODELPRESS_REPOSITORY)")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--require-gpu", action="store_true", default=None)
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    try:
        settings = Settings(**overrides)
        serve(settings)
    except ValidationError as e:
        first = e.errors()[0]
        print(f"error: setting '{'.'.join(str(p) for p in first['loc'])}': {first['msg']}", file=sys.stderr)
        return 2
    except ServeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
