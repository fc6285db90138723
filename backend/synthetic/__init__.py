"""Synthetic captures, backend side: the simulated body, the garment's sewing pattern and
its texture, written by ``python -m backend synth prepare`` for Blender to simulate and
render (``operators/synthetic``).

Modules: ``prepare`` (the command), ``leadin`` (body track with a settle lead-in),
``patterns`` (garment patterns and pattern.npz) built from ``measure`` (the body),
``garments`` (one plan per garment type), ``surfaces``, ``panels``, ``flatten`` and
``mesher`` (geometry), ``clearance`` (distance to the body), ``textures``, ``npzio``.
This package's top level stays light (no numeric imports): the CLI imports it.
"""

from .errors import SynthError

__all__ = ["SynthError"]
