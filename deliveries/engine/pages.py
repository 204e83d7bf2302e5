"""Pages: the members of one action, read from the staged picture a page at a time."""

from collections.abc import Iterator

from django.db import connection as db

from cohorts.models import Profile
from integrations import payloads

from ..models import SnapshotMember, StagedMember, SyncRun
from .plan import PagePlan


def profile_join(*, profile_id: str, columns: str, left: bool = True) -> str:
    """`JOIN` of the profile row `profile_id` names, as `p` with these columns, one index probe a row.

    PostgreSQL: a LATERAL lookup (OFFSET 0 keeps it from being flattened into a plain join), so
    the plan is a primary-key probe per row whatever the statistics say. A plain join, with a
    profile table analysed while empty, was planned as a nested loop that walks every profile
    for every row (20k members: 400M rows read). SQLite always probes its rowid.
    """
    kind = "LEFT JOIN" if left else "JOIN"
    profile = Profile._meta.db_table
    if db.vendor == "postgresql":
        return f"{kind} LATERAL (SELECT {columns} FROM {profile} p WHERE p.id = {profile_id} OFFSET 0) p ON TRUE"
    return f"{kind} {profile} p ON p.id = {profile_id}"


def stream_pages(*, run: SyncRun, plan: PagePlan, properties: tuple[str, ...],
                 skip: int = 0) -> Iterator[list[payloads.MemberRow]]:
    """The members of one action, a page at a time (keyset pagination: memory flat in N),
    from page `skip + 1` on (a resumed run: its pages are cut as before, the picture is fixed).

    LEFT JOIN: a removal may name a profile deleted since it was delivered; it goes out
    with the distinct id the snapshot kept.
    """
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
    profile_columns = f"p.email, p.first_name, p.last_name, p.phone_number, {properties_column} AS properties"
    if db.vendor == "postgresql":
        properties_column = "p.properties"  # the lateral lookup's column
    # Column order is payloads.MemberRow's, with the keyset column last. The page is found
    # first, then joined: with fresh statistics a plain join LIMIT was planned as a merge
    # join walking the profiles from the start for every page (docs/benchmarks.md).
    sql = f"""SELECT st.distinct_id, p.email, p.first_name, p.last_name, p.phone_number, {properties_column},
                     st.profile_id
              FROM (SELECT st.profile_id, st.distinct_id FROM {source} st
                    WHERE {where} AND st.profile_id > %s ORDER BY st.profile_id LIMIT %s) st
              {profile_join(profile_id="st.profile_id", columns=profile_columns)}
              ORDER BY st.profile_id"""
    last_profile_id = 0
    make_row = payloads.MemberRow._make
    with db.cursor() as cursor:
        if skip:
            # Where page `skip + 1` starts: one ordered index walk over the skipped rows.
            cursor.execute(f"SELECT st.profile_id FROM {source} st WHERE {where} ORDER BY st.profile_id "
                           f"LIMIT 1 OFFSET %s", [*source_params, skip * plan.page_size - 1])
            row = cursor.fetchone()
            last_profile_id = row[0] if row else None
        for _ in range(plan.pages - skip):
            if last_profile_id is None:  # nothing after the skipped pages: an empty page
                yield []
                continue
            cursor.execute(sql, [*source_params, last_profile_id, plan.page_size])
            rows = cursor.fetchall()
            if rows:
                last_profile_id = rows[-1][6]
            yield [make_row(row[:6]) for row in rows]
