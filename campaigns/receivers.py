"""Follow cohort recomputations: ASAP messages check their audience each time (docs/contract.md)."""

from django.dispatch import receiver

from cohorts.signals import cohort_recomputed

from . import services


@receiver(cohort_recomputed, dispatch_uid="campaigns.asap_messages")
def queue_asap_messages(sender, cohort_id: int, **kwargs) -> None:
    services.messages_for_recomputed_cohort(cohort_id=cohort_id)  # one indexed read; runs start on commit
