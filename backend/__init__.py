"""Reconstruction engine: numpy/torch only, never bpy.

Run as ``python -m backend`` (see ``backend/cli.py``). Importing this package must
stay cheap and torch-free: the Blender side imports nothing from here, but the CLI
and tests import the light sub-packages (capture, jobs) without torch.
"""
