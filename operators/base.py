"""The base every Garment operator derives from: one place for error handling.

``run`` does the work. ``GarmentError`` (a problem the user can fix: a missing
interpreter, a job already running) becomes an ERROR report and CANCELLED.
Anything else is a bug: logged with its traceback, reported, and re-raised when
``RAISE_ERRORS`` is set (tests set it so failures are not swallowed).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

RAISE_ERRORS = os.environ.get("GARMENT_RECON_RAISE_ERRORS") == "1"


class GarmentError(RuntimeError):
    """A problem the user can fix; the message says what and where."""


class GarmentOperator:
    """Mixin for ``bpy.types.Operator`` subclasses: implement ``run(context)``."""

    def run(self, context) -> set[str]:
        raise NotImplementedError

    def execute(self, context):
        try:
            return self.run(context)
        except GarmentError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except Exception as exc:
            log.exception("%s failed", self.bl_idname)
            self.report({"ERROR"}, f"internal error in {self.bl_label}: {exc} (see the console)")
            if RAISE_ERRORS:
                raise
            return {"CANCELLED"}
