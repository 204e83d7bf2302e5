from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from deliveries import engine, selectors, services
from deliveries.engine.preview import RunPreview, sync_preview
from deliveries.models import MemberOp, Sync, SyncRun
from outbound.commands import cli_run_precheck
from outbound.models import DeliveryAttempt


class Command(BaseCommand):
    help = "Run one sync now, in the foreground, and print what it sent."

    def add_arguments(self, parser):
        parser.add_argument("sync_id", type=int)
        parser.add_argument("--full", action="store_true", help="send the whole cohort as `members`")
        parser.add_argument("--resume", action="store_true", help="resume a paused sync, then run it")
        parser.add_argument("--dry-run", action="store_true",
                            help="show what the next run would send (counts, pages, the first page); send nothing")
        parser.add_argument("--break-claim", action="store_true",
                            help="take the sync's claim from a holder that stopped renewing it, then run it")

    def handle(self, *args, sync_id: int, full: bool, resume: bool, break_claim: bool = False, dry_run: bool = False,
               **options):
        sync = Sync.objects.select_related("cohort", "connection").filter(pk=sync_id).first()
        if sync is None:
            raise CommandError(f"There is no sync {sync_id}.")
        if dry_run:
            if resume:
                raise CommandError("--dry-run changes nothing: it cannot be combined with --resume.")
            self._report_preview(sync, sync_preview(sync=sync, full=full))
            return
        cli_run_precheck(subject=sync, noun="sync", resume=resume, stdout=self.stdout,
                         resume_service=lambda: services.sync_resume(sync=sync),
                         check_service=lambda: services.sync_check_runnable(sync=sync))

        if break_claim and sync.claimed_until is not None:
            if not services.sync_break_claim(sync=sync):
                raise CommandError(f"{self._holder(sync)}: it is alive, so its claim was not broken.")
            self.stdout.write(f"Broke the claim of {sync.claimed_by or 'a worker'} on sync {sync_id}.")

        with tqdm(desc=f"sync {sync_id}", unit=" members", disable=None) as bar:
            run = engine.sync_run(sync_id=sync_id, full=full, trigger="cli", progress=bar.update)
        if run is None:
            sync.refresh_from_db()
            if sync.claimed_until is None:  # not held (any more): say why it did not run
                raise CommandError(f"Sync {sync_id} {selectors.sync_not_run_reason(sync_id=sync_id)}; try again later.")
            silent = services.sync_claim_is_silent(sync=sync)
            hint = "; it has stopped renewing it: run again with --break-claim" if silent else "; try again later"
            raise CommandError(self._holder(sync) + hint)
        self._report(run)
        if run.status != SyncRun.Status.SUCCEEDED:
            raise CommandError(f"Run {run.session_id} {run.status}: {run.error_message}")

    def _holder(self, sync: Sync) -> str:
        silent_for = services.sync_claim_silent_for(sync=sync).total_seconds()
        return (f"Sync {sync.pk} is being run by {sync.claimed_by or 'another worker'} (claim held until "
                f"{timezone.localtime(sync.claimed_until):%Y-%m-%d %H:%M:%S %Z}, last renewed {silent_for:.0f} s ago)")

    def _report(self, run: SyncRun) -> None:
        resumed = (f", resumed from page {run.stops[-1]['pages_delivered'] + 1} (resumption {run.resumed_count})"
                   if run.resumed_count else "")
        self.stdout.write(f"Run {run.session_id} ({run.kind}, {run.reason}{resumed}): {run.status}")
        attempts = DeliveryAttempt.objects.filter(run=run).order_by("page_number", "attempt_number")
        for attempt in attempts.iterator():
            self.stdout.write(
                f"  page {attempt.page_number}/{run.total_pages} {attempt.action} try {attempt.attempt_number}: "
                f"{attempt.outcome} HTTP {attempt.http_status or '-'} in {attempt.latency_ms} ms"
                + (f" — {attempt.error}" if attempt.error else "")
            )
        pages = f"{run.pages_delivered}/{run.total_pages} pages"
        if run.status == SyncRun.Status.SUCCEEDED:
            removes = f" and {run.removes_count} removes" if run.removes_count else ""
            if run.kind == SyncRun.Kind.FULL:
                self.stdout.write(f"Sent {run.members_count} members{removes} in {pages}.")
            else:
                self.stdout.write(f"Sent {run.adds_count} adds and {run.removes_count} removes in {pages}.")
            return
        # Pages are sent in order: what reached the receiver follows from the pages delivered.
        delivered = engine.delivered_counts(run=run, page_size=run.page_size or engine.page_size_for(run.sync.connection))
        counts = {MemberOp.MEMBER: run.members_count, MemberOp.ADD: run.adds_count, MemberOp.REMOVE: run.removes_count}
        parts = [f"{delivered[op]} of {counts[op]} {engine.ACTIONS[op]}" for op in delivered]
        resumes = (f"; the next attempt resumes it from page {run.pages_delivered + 1}"
                   if settings.COHORTSYNC_RESUME_MAX_AGE_HOURS else "")
        self.stdout.write(f"Delivered {', '.join(parts)} ({pages}) before the run stopped{resumes}.")

    def _report_preview(self, sync: Sync, preview: RunPreview) -> None:
        self.stdout.write(f"Dry run of sync {sync.pk} ({sync.get_state_display().lower()}): nothing was sent.")
        self.stdout.write(f"Next run: {preview.kind} ({preview.reason})")
        if preview.kind == SyncRun.Kind.FULL:
            self.stdout.write(f"  {preview.members_count} members")
        else:
            self.stdout.write(f"  {preview.adds_count} adds, {preview.removes_count} removes")
        pages = ", ".join(f"{count} {action}" for action, count in preview.pages.items())
        self.stdout.write(f"  {preview.total_pages} pages ({pages})")
        if preview.error:
            self.stdout.write(f"  The run would pause: {preview.error}")
        page = preview.first_page
        if page is not None:
            self.stdout.write(f"First page ({page.action}, {page.members} members): POST {page.url}")
            for name, value in page.headers.items():
                self.stdout.write(f"  {name}: {value}")
            self.stdout.write("")
            self.stdout.write(page.body)
