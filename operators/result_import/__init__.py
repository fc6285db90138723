"""Result bundle -> native Blender data: mesh, per-frame shape keys, material, cache.

bpy + numpy only. Reusable by any operator (Import Garment Result, and Reconstruct
Garment when its job finishes): call ``import_result(context, result_dir, settings)``.

Modules: bundle (read and check garment.npz, find textures), mesh, shape_keys,
animation (slotted/legacy action helper), material, cache (Alembic/USD mode),
datablocks (create-or-nothing tracking, removal), importer (the orchestration).
"""

from .bundle import LoadedResult, ResultImportError, load_result
from .datablocks import remove_garment
from .importer import RESULT_PATH_PROP, ImportSettings, find_imported, import_result

__all__ = [
    "RESULT_PATH_PROP",
    "ImportSettings",
    "LoadedResult",
    "ResultImportError",
    "find_imported",
    "import_result",
    "load_result",
    "remove_garment",
]
