"""``python -m modelpress.serving --repository DIR [--host] [--port] [--workers] [--require-gpu]``."""

from __future__ import annotations

import argparse
import sys

from modelpress.serving.server import ServeError, serve
from modelpress.serving.settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelpress.serving", description="modelpress inference server")
    parser.add_argument("--repository", help="model repository folder (or MODELPRESS_REPOSITORY)")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--require-gpu", action="store_true", default=None)
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    try:
        serve(load_settings(**overrides))
    except (SettingsError, ServeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
