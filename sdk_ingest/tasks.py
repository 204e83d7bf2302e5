from celery import shared_task

from . import services


@shared_task(name="sdk_ingest.prune_insert_ids", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def prune_insert_ids() -> int:
    return services.insert_ids_prune()
