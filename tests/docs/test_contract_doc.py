"""docs/contract.md states the limits and status classes that the code's policies hold
(outbound/policy.py, campaigns/policy.py); a change to one without the other fails here."""

from pathlib import Path

from campaigns import policy as message_policy
from outbound import policy

CONTRACT = (Path(__file__).resolve().parents[2] / "docs" / "contract.md").read_text(encoding="utf-8")


def test_the_contract_states_the_code_limits():
    assert f"at most **{policy.PAGE_SIZE}** members" in CONTRACT
    assert f"up to **{policy.MAX_EXPORTED_PROPERTIES}** profile properties" in CONTRACT
    assert f"at most **{message_policy.BATCH_SIZE}** profiles" in CONTRACT
    assert f"posts **{message_policy.TEST_SEND_PROFILES}** random profiles" in CONTRACT


def test_the_contract_names_every_status_class():
    transient = sorted(policy.TRANSIENT_CLIENT_STATUSES)
    assert f"**Transient**: 5xx, {', '.join(map(str, transient))}, timeouts" in CONTRACT
    assert "every other 4xx, and every 3xx" in CONTRACT
    paused = set(range(300, 500)) - set(transient)
    assert all(policy.classify_status(status) is policy.Outcome.PAUSE for status in paused)
    assert all(policy.classify_status(status) is policy.Outcome.TRANSIENT for status in [*transient, 500, 599])
    assert f"paused by a {' or '.join(map(str, sorted(policy.FORGOTTEN_COHORT_STATUSES)))}" in CONTRACT
