from django.core.management.base import BaseCommand, CommandError

from campaigns import sending, services
from campaigns.models import Message, MessageRun
from outbound.commands import cli_run_precheck
from outbound.models import DeliveryAttempt


class Command(BaseCommand):
    help = "Run one user message now, in the foreground (or --test: post 5 random profiles, mark nobody)."

    def add_arguments(self, parser):
        parser.add_argument("message_id", type=int)
        parser.add_argument("--test", action="store_true", help="a test send: 5 random profiles, nobody marked sent")
        parser.add_argument("--resume", action="store_true", help="resume a paused message, then run it")

    def handle(self, *args, message_id: int, test: bool, resume: bool, **options):
        message = Message.objects.select_related("cohort", "connection").filter(pk=message_id).first()
        if message is None:
            raise CommandError(f"There is no message {message_id}.")
        if test:
            result = services.message_send_test(message=message)
            self.stdout.write(f"Test send of {len(result.distinct_ids)} profiles "
                              f"({', '.join(result.distinct_ids) or 'the project has none'}): "
                              f"{result.outcome} HTTP {result.http_status or '-'} in {result.latency_ms} ms"
                              + (f" — {result.message}" if result.message else ""))
            if result.response_excerpt:
                self.stdout.write(f"  answer: {result.response_excerpt}")
            self.stdout.write("Nobody was marked sent.")
            return
        cli_run_precheck(subject=message, noun="message", resume=resume, stdout=self.stdout,
                         resume_service=lambda: services.message_resume(message=message),
                         check_service=lambda: services.message_check_runnable(message=message))
        run = sending.message_run(message_id=message_id, trigger="cli")
        for attempt in DeliveryAttempt.objects.filter(message_run=run).order_by("page_number", "attempt_number"):
            self.stdout.write(f"  batch {attempt.page_number}/{run.total_batches} try {attempt.attempt_number}: "
                              f"{attempt.outcome} HTTP {attempt.http_status or '-'} in {attempt.latency_ms} ms"
                              + (f" — {attempt.error}" if attempt.error else ""))
        self.stdout.write(f"Run {run.session_id}: {run.status}; {run.sent_count} of {run.users_count} users sent "
                          f"in {run.batches_delivered}/{run.total_batches} batches.")
        if run.status != MessageRun.Status.SUCCEEDED:
            raise CommandError(f"Run {run.session_id} {run.status}: {run.error_message}")
