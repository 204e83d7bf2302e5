"""What the run commands (`runsync`, `runmessage`) share: how a run from the CLI starts."""

from collections.abc import Callable

from django.core.management.base import CommandError, OutputWrapper

from .errors import StateConflict


def cli_run_precheck(*, subject, noun: str, resume: bool, resume_service: Callable[[], object],
                     check_service: Callable[[], None], stdout: OutputWrapper) -> None:
    """Resume first when asked (and say so), then the subject's own state rule; a refusal is a
    CommandError, and a paused subject's names the flag that resumes it."""
    try:
        if resume:
            before = subject.state
            resume_service()
            if subject.state != before:
                stdout.write(f"Resumed {noun} {subject.pk}.")
        check_service()
    except StateConflict as exc:
        if exc.state == "paused":  # the CLI's way out: say why, and the flag that resumes
            raise CommandError(f"{noun.capitalize()} {subject.pk} is paused ({subject.last_error_message or 'no message'}). "
                               "Fix the receiver, then run again with --resume.") from exc
        raise CommandError(f"{noun.capitalize()} {subject.pk}: {exc}") from exc
