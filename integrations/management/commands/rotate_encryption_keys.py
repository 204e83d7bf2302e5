from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from integrations.services import connection_secrets_rotate


class Command(BaseCommand):
    help = ("Re-encrypt every stored connection secret with the first key of COHORTSYNC_ENCRYPTION_KEYS, "
            "so the keys after it can be removed.")

    def handle(self, *args, **options):
        try:
            rotated = connection_secrets_rotate()
        except ValidationError as exc:
            raise CommandError(
                "Nothing was changed. " + " ".join(exc.messages)
                + " Add the key they were encrypted with to COHORTSYNC_ENCRYPTION_KEYS and run this again."
            ) from exc
        others = len(settings.COHORTSYNC_ENCRYPTION_KEYS) - 1
        self.stdout.write(f"Re-encrypted the secrets of {rotated} connection(s) with the first key; the "
                          f"{others} other key(s) in COHORTSYNC_ENCRYPTION_KEYS can now be removed.")
