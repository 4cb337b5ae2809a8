"""The one base of every bad-input error, in every stage: the CLI catches this type and prints one line.

Training (recipe, data, checkpoint), export (recipe section, pass config, refused variant) and serving
(settings, startup) each raise their own subclasses, named for the stage; anything that is not a
``UserError`` is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input the user can fix; the message names the problem (what was expected, what came)."""
