"""Garment Reconstruction: a Blender extension that turns footage of a clothed person
into an animated, textured garment. This module only registers and unregisters;
see operators/, panels/ and backend/."""

from . import operators, panels, properties

_MODULES = (properties, operators, panels)


def register():
    for module in _MODULES:
        module.register()


def unregister():
    for module in reversed(_MODULES):
        module.unregister()
