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


def test_the_contract_names_every_status_that_pauses():
    statuses = sorted(policy.PAUSE_STATUSES)
    assert f"{', '.join(map(str, statuses[:-1]))} and {statuses[-1]} stop the run and **pause**" in CONTRACT
    assert all(policy.classify_status(status) is policy.Outcome.PAUSE for status in statuses)

