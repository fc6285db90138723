"""Synthetic captures: a garment simulated with Blender cloth on an Anny body, rendered
with Cycles into a capture bundle plus ground truth (``gt/``) for tests, the demo and the
quality benchmark. Backend preparation (body track, sewing pattern, texture) runs in
the backend process (``python -m backend synth prepare``); this package does the
Blender part: simulation, look, rendering and the bundle.
"""
