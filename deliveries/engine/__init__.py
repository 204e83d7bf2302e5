"""The sync engine: plan → stage (SQL) → stream pages → send (retry policy) → commit.

A run fixes its picture once, in the staging table, and never reads the live cohort
again; the snapshot (delivered state) changes only when every page succeeded, and then
by the size of the change (docs/design.md). Each step is a module of this package.
"""

from .commit import commit_snapshot, finish_run
from .pages import stream_pages
from .plan import ACTIONS, PagePlan, RunPlan, delivered_counts, page_size_for, plan_run, run_ops
from .records import RunRecords
from .run import abandon_unfinished_runs, sync_run
from .send import deliver_run, send_page
from .stage import carry_over, stage_members, writes_new_generation

__all__ = [
    "ACTIONS", "PagePlan", "RunPlan", "RunRecords", "abandon_unfinished_runs", "carry_over",
    "commit_snapshot", "deliver_run", "delivered_counts", "finish_run", "page_size_for", "plan_run", "run_ops",
    "send_page", "stage_members", "stream_pages", "sync_run", "writes_new_generation",
]
