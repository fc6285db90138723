"""The backend's error hierarchy.

Every error a user can cause (bad input, bad settings, a missing package) is a
``BackendError``; anything else reaching the CLI is a bug and is reported as a crash.
Messages name the culprit (file, frame number, key) and state expected vs. got.
"""


class BackendError(RuntimeError):
    """Base class of every error the backend raises on purpose.

    ``hint`` is an optional one-line suggestion shown to the user next to the message.
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class ConfigError(BackendError):
    """A job file or settings object is malformed: unknown, missing or mistyped key."""
