"""Pages: the members of one action, read from the staged picture a page at a time."""

from collections.abc import Iterator

from django.db import connection as db

from cohorts.models import Profile
from integrations import payloads

from ..models import SnapshotMember, StagedMember, SyncRun
from .plan import PagePlan


def stream_pages(*, run: SyncRun, plan: PagePlan, properties: tuple[str, ...]) -> Iterator[list[payloads.MemberRow]]:
    """The members of one action, a page at a time (keyset pagination: memory flat in N).

    LEFT JOIN: a removal may name a profile deleted since it was delivered; it goes out
    with the distinct id the snapshot kept.
    """
    profile = Profile._meta.db_table
    if plan.snapshot_generation is None:
        source, where = StagedMember._meta.db_table, "st.run_id = %s AND st.op = %s"
        source_params = [run.pk, int(plan.op)]
    else:
        source, where = SnapshotMember._meta.db_table, "st.sync_id = %s AND st.generation = %s"
        source_params = [run.sync_id, plan.snapshot_generation]
    # Properties are decoded with orjson in payloads, not by the JSONField (about twice as fast).
    properties_column = "NULL"
    if properties:
        properties_column = "p.properties::text" if db.vendor == "postgresql" else "p.properties"
    # Column order is payloads.MemberRow's, with the keyset column last. The page is found
    # first, then joined: with fresh statistics a plain join LIMIT was planned as a merge
    # join walking the profiles from the start for every page (docs/benchmarks.md).
    sql = f"""SELECT st.distinct_id, p.email, p.first_name, p.last_name, p.phone_number, {properties_column},
                     st.profile_id
              FROM (SELECT st.profile_id, st.distinct_id FROM {source} st
                    WHERE {where} AND st.profile_id > %s ORDER BY st.profile_id LIMIT %s) st
              LEFT JOIN {profile} p ON p.id = st.profile_id
              ORDER BY st.profile_id"""
    last_profile_id = 0
    make_row = payloads.MemberRow._make
    with db.cursor() as cursor:
        for _ in range(plan.pages):
            cursor.execute(sql, [*source_params, last_profile_id, plan.page_size])
            rows = cursor.fetchall()
            if rows:
                last_profile_id = rows[-1][6]
            yield [make_row(row[:6]) for row in rows]
