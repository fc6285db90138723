"""Panels: the sidebar UI and the preferences' drawing. They draw state, never compute."""

import bpy

from . import sidebar

CLASSES = (*sidebar.CLASSES,)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
