"""Drawing a job's state (shared by the sidebar and the preferences)."""

from __future__ import annotations

from ..operators.job_runner import JobRunner, Status

CANCEL_OPERATOR = "garment.cancel_job"


def draw_job_state(layout, kind: str, runner: JobRunner, title: str) -> None:
    """Progress bar, ETA, loss, last message, Cancel; or the outcome once finished."""
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
        return
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
