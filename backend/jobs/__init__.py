"""Jobs: job.json, the JSON-lines event protocol, cancellation, result bundles."""

from .cancel import CANCEL_FILE, CancelToken, JobCancelled, request_cancel
from .events import EVENT_TYPES, EventStream, ExitCode, parse_event
from .result import GarmentResult, ResultBundle, ResultError, read_result, write_result
from .spec import JOB_FILE, JobSettings, JobSpec, load_job, save_job

__all__ = [
    "CANCEL_FILE",
    "EVENT_TYPES",
    "JOB_FILE",
    "CancelToken",
    "EventStream",
    "ExitCode",
    "GarmentResult",
    "JobCancelled",
    "JobSettings",
    "JobSpec",
    "ResultBundle",
    "ResultError",
    "load_job",
    "parse_event",
    "read_result",
    "request_cancel",
    "save_job",
    "write_result",
]
