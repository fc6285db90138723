"""The reconstruction job of this session: its folder, starting it, and what happens
when it ends (the result imported into the scene that started it).

A job folder (``<working folder>/jobs/<scene>_<garment>_<timestamp>``) holds::

    job.json      what the backend runs (relative paths: the folder can be moved)
    capture/      the capture bundle exported from the scene
    result/       the result bundle; result/checkpoint/ lets a re-run resume
    log.jsonl     every event of every run; stderr.log: the latest run's log

Reconstruct Garment makes a new folder; Resume Reconstruction runs the same
``job.json`` again in the same folder, and the backend continues from the checkpoint
(written every two minutes, on cancel and at the end).

The scene is found again at the end by its ``garment_recon.last_job_folder``, so a
file opened meanwhile never receives a garment that is not its own. Nothing in the
scene changes unless the job succeeds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import bpy

from . import job_control
from .backend_env import backend_command, backend_environment
from .base import GarmentError
from .job_runner import JobRunner, Status

log = logging.getLogger(__name__)

JOB_KIND = "reconstruct"
JOB_FILE = "job.json"
CAPTURE_DIR = "capture"
RESULT_DIR = "result"
CANCEL_GRACE_S = 30.0
"""Seconds a cancelled reconstruction gets to write its checkpoint before it is
terminated (a step at the high preset on a CPU can take seconds)."""


class ReconstructRunner(JobRunner):
    """A JobRunner that keeps the latest loss: the backend reads the loss back only
    every few steps (a device sync) and sends ``loss: null`` in between, which would
    make the panel's loss line blink."""

    def _apply(self, line: str) -> None:
        loss = self.state.loss
        super()._apply(line)
        if self.state.loss is None:
            self.state.loss = loss


@dataclass
class ReconstructJob:
    """The latest reconstruction of this session, for the panel and the operators.

    Attributes:
        folder: the job folder (job.json, capture/, result/).
        scene_name: the scene that started it (the result goes there).
        garment: name of the imported garment object once the job is done.
        import_error: why a finished job's result could not be imported.
        import_s: seconds the import took.
        warnings: problems the import reported that did not stop it.
        checkpoint: whether a job that stopped left a checkpoint to resume from (None
            while it runs or once it is done).
    """

    folder: Path
    scene_name: str
    garment: str | None = None
    import_error: str | None = None
    import_s: float | None = None
    warnings: list[str] = field(default_factory=list)
    checkpoint: bool | None = None

    @property
    def result(self) -> Path:
        return self.folder / RESULT_DIR


_current: list[ReconstructJob] = []


def current() -> ReconstructJob | None:
    """The latest reconstruction started in this session, or None."""
    return _current[-1] if _current else None


def runner() -> JobRunner | None:
    """The runner of the latest reconstruction (running or finished), or None."""
    return job_control.job(JOB_KIND)


def is_running() -> bool:
    r = runner()
    return r is not None and not r.state.finished


def can_resume(scene) -> bool:
    """Whether Resume Reconstruction applies to ``scene``: it has a job folder whose
    result was not imported, and no reconstruction runs. Reads no files (panels call it
    on every redraw)."""
    settings = scene.garment_recon
    return bool(settings.last_job_folder) and not settings.last_job_imported \
        and not is_running()


def new_job_folder(work: Path, scene_name: str, garment_type: str) -> Path:
    """A folder name that does not exist yet under ``work/jobs`` (not created)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{bpy.path.clean_name(scene_name)}_{garment_type}_{stamp}"
    folder = work / "jobs" / base
    n = 2
    while folder.exists():
        folder = work / "jobs" / f"{base}_{n}"
        n += 1
    return folder


def write_job(folder: Path, settings) -> Path:
    """Write ``folder/job.json`` for ``capture/`` -> ``result/`` with ``settings``
    (a ``backend.jobs.spec.JobSettings``); returns its path."""
    from ..backend.jobs.spec import JobSpec, save_job

    spec = JobSpec(capture=Path(CAPTURE_DIR), output=Path(RESULT_DIR), settings=settings)
    return save_job(spec, folder / JOB_FILE)


def start(scene, prefs, folder: Path, blocking: bool | None = None) -> JobRunner:
    """Run ``folder/job.json`` (new or resumed) for ``scene``; see ``job_control.start_job``.

    ``scene.garment_recon.last_job_folder`` becomes ``folder``. When the job ends, its
    result is imported into ``scene`` (``_finish``).

    Raises:
        GarmentError: a reconstruction is already running, or the backend cannot start.
    """
    if is_running():
        raise GarmentError("A reconstruction is already running; cancel it first "
                           "(Garment sidebar > Run > Cancel Job)")
    argv = backend_command(prefs, folder, "--log-level", "INFO", "run", str(folder / JOB_FILE))
    env = backend_environment(prefs)
    settings = scene.garment_recon
    before = (settings.last_job_folder, settings.last_job_imported, list(_current))
    settings.last_job_folder = str(folder)  # set first: a synchronous job ends inside
    settings.last_job_imported = False
    _current[:] = [ReconstructJob(folder=folder, scene_name=scene.name)]
    try:
        return job_control.start_job(JOB_KIND, argv, folder, env=env, on_finish=_finish,
                                     blocking=blocking, runner_class=ReconstructRunner,
                                     cancel_grace_s=CANCEL_GRACE_S)
    except GarmentError:  # it never started: the scene stays as it was
        settings.last_job_folder, settings.last_job_imported, _current[:] = before
        raise


def _finish(runner: JobRunner) -> None:
    """``on_finish`` of a reconstruction: import the result into its scene, select it
    and set the timeline to its frames. A failed or cancelled job changes nothing."""
    job = current()
    if job is None:
        return
    if runner.state.status != Status.DONE:
        job.checkpoint = _has_checkpoint(job.result)
        return
    scene = _owning_scene(job)
    if scene is None:
        job.import_error = (f"Scene '{job.scene_name}' that started the reconstruction is not "
                            f"open any more; import {job.result} with Import Garment Result")
        return
    t0 = time.perf_counter()
    try:
        obj = import_into(scene, job)
    except GarmentError as exc:
        job.import_error = f"The reconstruction finished, but its import failed: {exc}"
        return
    except Exception as exc:  # a bug: logged with its traceback, shown in the panel
        log.exception("importing %s failed", job.result)
        job.import_error = f"internal error importing {job.result}: {exc} (see the console)"
        return
    job.garment = obj.name
    job.import_s = time.perf_counter() - t0
    scene.garment_recon.last_job_imported = True
    log.info("reconstruction %s imported as '%s' in %.2f s", job.folder, obj.name, job.import_s)
    if not bpy.app.background:  # changes made from a timer are not on the undo stack
        with contextlib.suppress(RuntimeError):
            bpy.ops.ed.undo_push(message="Reconstruct Garment")


def import_into(scene, job: ReconstructJob):
    """Import ``job``'s result into ``scene`` beside the body (its collection), select it
    alone and make it active, with the scene's frame range set to the result's frames."""
    from ..properties import GARMENT_TYPE_ITEMS
    from .result_import import ImportSettings, import_result

    garment_type = _capture_garment_type(job.folder)
    labels = {key: label for key, label, _ in GARMENT_TYPE_ITEMS}
    name = f"Reconstructed {labels.get(garment_type, 'Garment')}"
    settings = ImportSettings(replace_existing=True, set_frame_range=True, name=name)
    collection = _body_collection(scene)
    view_layer = scene.view_layers[0]
    with bpy.context.temp_override(scene=scene, view_layer=view_layer, collection=collection):
        obj = import_result(bpy.context, job.result, settings,
                            on_warning=job.warnings.append)
    for layer in scene.view_layers:
        try:
            obj.select_set(True, view_layer=layer)
        except RuntimeError:  # its collection is excluded from this view layer
            continue
        for other in layer.objects:
            if other != obj and other.select_get(view_layer=layer):
                other.select_set(False, view_layer=layer)
        layer.objects.active = obj
    return obj


def _owning_scene(job: ReconstructJob):
    key = str(job.folder)
    owners = [s for s in bpy.data.scenes if s.garment_recon.last_job_folder == key]
    named = [s for s in owners if s.name == job.scene_name]
    return (named or owners or [None])[0]


def _body_collection(scene):
    body = scene.garment_recon.body
    if body is not None:
        in_scene = set(scene.collection.children_recursive)
        for collection in body.users_collection:
            if collection == scene.collection or collection in in_scene:
                return collection
    return scene.collection


def _has_checkpoint(result: Path) -> bool:
    from ..backend.jobs.result import CHECKPOINT_DIR

    try:
        return any((result / CHECKPOINT_DIR).iterdir())
    except OSError:
        return False


def _capture_garment_type(folder: Path) -> str | None:
    from ..backend.capture.bundle import CAPTURE_FILE

    try:
        return json.loads((folder / CAPTURE_DIR / CAPTURE_FILE).read_text()).get("garment_type")
    except (OSError, ValueError, AttributeError):
        return None
