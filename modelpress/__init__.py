"""The modelpress command line: one verb per stage, each importing its stage lazily."""

__version__ = "0.1.0"
