"""What every app's API shares: the client's projects, project-scoped input, choice errors
and pagination. In cohorts, the lowest app with an API, so each API imports it downwards
(access, which needs cohorts' Project, adds API keys and the error handler above it).

A client (an API key, or a logged-in user) sees only the objects of the projects it acts for:
views filter their querysets by `client_projects`, so another project's object is a 404.
"""

from django.db.models import QuerySet
from rest_framework import exceptions, pagination, serializers, status
from rest_framework.response import Response

from .models import Project
from .selectors import projects_of_member

# The largest id (a BigAutoField, SQLite's INTEGER): a larger filter value would overflow the query.
MAX_ID = 2**63 - 1


def read_only_meta(model: type, fields: list[str]) -> type:
    """The Meta of an output serializer: `model`'s `fields`, all of them read-only."""
    return type("Meta", (), {"model": model, "fields": fields, "read_only_fields": fields})


def client_projects(request) -> QuerySet[Project]:
    """A key acts for exactly its project (access.authentication puts the key, which has a
    `project_id`, in `request.auth`); a logged-in user for the projects they are a member of."""
    key_project_id = getattr(request.auth, "project_id", None)
    if key_project_id is not None:
        return Project.objects.filter(pk=key_project_id)
    return projects_of_member(user=request.user)



# --- Project-scoped input ---------------------------------------------------------------


class ScopedPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """An id of an object in a project the client acts for; other projects' objects do not exist for it."""

    def __init__(self, *, project_path: str = "project", **kwargs):
        self.project_path = project_path
        super().__init__(**kwargs)

    def get_queryset(self):
        projects = client_projects(self.context["request"])
        return super().get_queryset().filter(**{f"{self.project_path}__in": projects})


class ChoiceField(serializers.ChoiceField):
    """DRF's ChoiceField whose "not a valid choice" error lists the valid ones. Every choice the
    API accepts uses it (tests/api/test_choice_errors.py checks that none is left out)."""

    def __init__(self, choices, **kwargs):
        super().__init__(choices, **kwargs)
        valid = ", ".join(f'"{value}"' for value in self.choice_strings_to_values).replace("{", "{{").replace("}", "}}")
        self.error_messages["invalid_choice"] = f'"{{input}}" is not a valid choice; valid choices: {valid}.'


class ProjectScopedInput(serializers.Serializer):
    """Input that creates or names something in one project: the project is implied for an API
    key and for a user of exactly one project; a user of several projects names it."""

    project = ScopedPrimaryKeyRelatedField(
        queryset=Project.objects.all(), project_path="pk", required=False,
        help_text="Project id. Implied for API keys and for users of a single project.",
    )

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs.get("project") is None:
            attrs["project"] = default_project(self.context["request"])
        return attrs


def default_project(request) -> Project:
    projects = list(client_projects(request)[:2])
    if len(projects) == 1:
        return projects[0]
    if not projects:
        raise exceptions.ValidationError({"project": ["You are not a member of any project."]})
    raise exceptions.ValidationError({"project": ["You are a member of several projects: give the project id."]})


# --- Pagination -------------------------------------------------------------------------


class StrictPageSize:
    """`page_size` as the schema states it (an integer, 1 to max_page_size): anything else is a
    400, not silently the default (DRF's own behaviour)."""

    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request):
        given = request.query_params.get(self.page_size_query_param)
        if given is None:
            return self.page_size
        if not (given.isascii() and given.isdigit() and 1 <= int(given) <= self.max_page_size):
            raise exceptions.ValidationError(
                {self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]})
        return int(given)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters


class PagePagination(StrictPageSize, pagination.PageNumberPagination):
    page_size = 100


class IdCursorPagination(StrictPageSize, pagination.CursorPagination):
    """Keyset pages by id for lists that may be huge (cohort members): no COUNT, no OFFSET."""

    page_size = 100
    ordering = "id"


# --- Writes through services ------------------------------------------------------------


class ServiceCreate:
    """POST: `create_input` checks the body, the app's `created(data)` calls its create service,
    `output` answers 201. Summaries and descriptions stay on each view (extend_schema_view)."""

    create_input: type[serializers.Serializer]
    output: type[serializers.Serializer]

    def created(self, data: dict):
        raise NotImplementedError

    def create(self, request):
        data = self.create_input(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        return Response(self.output(self.created(data.validated_data)).data, status=status.HTTP_201_CREATED)


class ServiceUpdate:
    """PATCH: `update_input` checks the body, the app's `changed(obj, data)` calls its update
    service, `update_output` (else `output`) answers with the object as it now is."""

    update_input: type[serializers.Serializer]
    output: type[serializers.Serializer]
    update_output: type[serializers.Serializer] | None = None

    def changed(self, obj, data: dict):
        raise NotImplementedError

    def partial_update(self, request, pk=None):
        obj = self.get_object()
        data = self.update_input(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        return Response((self.update_output or self.output)(self.changed(obj, data.validated_data)).data)
