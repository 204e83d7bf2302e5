from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from access.services import api_key_create
from cohorts.models import Project


class Command(BaseCommand):
    help = "Create an API key for a project and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, required=True, help="project id")
        parser.add_argument("--name", required=True, help="what uses the key, e.g. 'CRM export'")

    def handle(self, *args, project: int, name: str, **options):
        target = Project.objects.filter(pk=project).first()
        if target is None:
            raise CommandError(f"Project {project} does not exist.")
        try:
            api_key, key = api_key_create(project=target, name=name)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stderr.write(f"API key {api_key.pk} ({api_key.prefix}…) for project {target.pk} “{target.name}”. "
                          "It is shown only now:")
        self.stdout.write(key)
