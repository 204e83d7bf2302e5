"""The domain errors every app raises through its services, whatever the caller (API, pages,
admin, CLI, tasks); each interface turns them into its own kind of answer."""


class StateConflict(Exception):
    """A state change its subject's current state does not allow (running a paused sync,
    pausing a finished one). The API answers 409, the pages and the admin show the message,
    the CLI exits with it."""

    def __init__(self, message: str, *, state: str = ""):
        super().__init__(message)
        self.message = message
        self.state = state  # the subject's state when it refused (callers may add a hint by it)

    def __str__(self) -> str:
        return self.message


class BrokerUnavailable(Exception):
    """The broker refused a run's task: nothing was queued. The API answers 503, the pages and
    the admin show the message, the CLI exits with it."""
