"""Helpers every stage may import (training, export, serving and the CLI alike).

Nothing here imports a project package, and nothing heavier than pydantic and the standard library, so
importing it keeps every layer rule of the architecture and adds nothing to the serving image.
"""
