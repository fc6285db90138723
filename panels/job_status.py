"""Drawing a job's state (shared by the sidebar and the preferences)."""

from __future__ import annotations

from ..operators.job_runner import JobRunner, Status

CANCEL_OPERATOR = "garment.cancel_job"


def draw_job_state(layout, kind: str, runner: JobRunner, title: str):
    """Progress bar, ETA, loss, last message, Cancel; or the outcome once finished.

    Returns the box drawn into (callers add lines of their own)."""
    s = runner.state
    box = layout.box()
    box.label(text=f"{title}: {s.status}")
    if not s.finished:
        text = s.stage or "starting"
        if s.total:
            text += f"  {s.step}/{s.total}"
        if s.eta_s is not None:
            text += f"  ETA {_duration(s.eta_s)}"
        box.progress(factor=s.fraction, type="BAR", text=text)
        if s.loss is not None:
            box.label(text=f"Loss {s.loss:.5g}")
        if s.message:
            box.label(text=s.message, icon="INFO")
        row = box.row()
        row.enabled = s.status == Status.RUNNING
        row.operator(CANCEL_OPERATOR, icon="CANCEL").kind = kind
        return box
    if s.error:
        _lines(box, s.error, icon="ERROR")
        if s.hint:
            _lines(box, s.hint, icon="QUESTION")
        for line in s.log_tail:
            box.label(text=line)
    elif s.summary:
        _lines(box, s.summary, icon="CHECKMARK")
    for warning in s.warnings[-3:]:
        box.label(text=warning, icon="ERROR")
    return box


def draw_reconstruction(layout, kind: str, runner: JobRunner, job) -> None:
    """A reconstruction's state: ``draw_job_state`` plus where a stopped job stopped
    (Resume continues from there) and, once done, the imported garment.

    ``job``: ``operators.reconstruct_job.ReconstructJob`` or None."""
    s = runner.state
    box = draw_job_state(layout, kind, runner, "Reconstruction")
    if s.finished and s.status != Status.DONE:
        if s.total:
            box.label(text=f"Stopped at {s.stage} step {s.step}/{s.total}", icon="PAUSE")
        if job is not None and job.checkpoint is False:
            box.label(text="No checkpoint was written yet: Resume Reconstruction starts "
                      "over", icon="INFO")
        else:
            box.label(text="Resume Reconstruction continues from the last checkpoint",
                      icon="INFO")
    elif s.status == Status.DONE and job is not None:
        if job.garment is not None:
            box.label(text=f"Imported '{job.garment}' into scene '{job.scene_name}'",
                      icon="CHECKMARK")
        elif job.import_error:
            _lines(box, job.import_error, icon="ERROR")
        for warning in job.warnings[-3:]:
            box.label(text=warning, icon="ERROR")


def _lines(layout, text: str, icon: str) -> None:
    for i, line in enumerate(text.splitlines()):
        layout.label(text=line, icon=icon if i == 0 else "BLANK1")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
