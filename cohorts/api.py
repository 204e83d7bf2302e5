"""REST API for cohorts (CRUD, members, preview) and data in (profiles, events)."""

from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from . import ingestion
from .api_common import (
    ChoiceField,
    IdCursorPagination,
    ProjectScopedInput,
    ServiceCreate,
    ServiceUpdate,
    client_projects,
    read_only_meta,
)
from .models import Cohort, Profile
from .selectors import cohort_list, cohort_member_count, cohort_member_profiles, cohort_preview, profile_list
from .services import cohort_create, cohort_members_import, cohort_update

MAX_MEMBER_IDS = 100_000  # distinct ids in one members request; larger lists: `manage.py cohort_members`
PREVIEW_MAX_SAMPLE = 100
DEFINITION_HELP = "Rule cohorts only: AND/OR groups of conditions (docs/cohort-rules.md)."


# --- Serializers ----------------------------------------------------------------------


class ProfileOutput(serializers.ModelSerializer):
    properties = serializers.DictField(read_only=True)

    Meta = read_only_meta(Profile, ["distinct_id", "email", "first_name", "last_name", "phone_number", "properties",
                                    "created_at", "updated_at"])


class CohortOutput(serializers.ModelSerializer):
    definition = serializers.JSONField(read_only=True, help_text=DEFINITION_HELP)

    Meta = read_only_meta(Cohort, ["id", "project", "name", "description", "kind", "definition", "created_at",
                                   "updated_at"])


class CohortDetailOutput(CohortOutput):
    member_count = serializers.SerializerMethodField(help_text="Members now (computed when read).")

    Meta = read_only_meta(Cohort, [*CohortOutput.Meta.fields, "member_count"])

    def get_member_count(self, cohort: Cohort) -> int:
        return cohort_member_count(cohort=cohort)


class CohortUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    definition = serializers.JSONField(required=False, help_text=DEFINITION_HELP)


class CohortInput(ProjectScopedInput, CohortUpdateInput):
    name = serializers.CharField(max_length=200)
    kind = ChoiceField(choices=Cohort.Kind.choices, default=Cohort.Kind.STATIC)


class DistinctIdField(serializers.CharField):
    """Any string: the service checks each distinct id (ingestion.distinct_id_problem) and refuses
    the bad ones one by one, so one bad id does not lose the whole list."""

    def __init__(self, **kwargs):
        super().__init__(trim_whitespace=False, allow_blank=True, **kwargs)
        self.validators = []  # CharField's own refuse NUL and surrogates for the whole request


class MembersInput(serializers.Serializer):
    distinct_ids = serializers.ListField(
        child=DistinctIdField(), max_length=MAX_MEMBER_IDS,
        help_text="Distinct ids of profiles of the cohort's project; unknown ids are counted and ignored. Ids "
        "longer than 255 characters, with surrounding whitespace, control characters or lone surrogates are "
        "refused one by one (see `errors`); the others apply.",
    )


class ItemErrorOutput(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the refused item in the batch.")
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class MembershipChangeOutput(serializers.Serializer):
    added = serializers.IntegerField()
    removed = serializers.IntegerField()
    size = serializers.IntegerField(help_text="Members after the change.")
    unknown_count = serializers.IntegerField(help_text="Distinct ids that name no profile of the project.")
    unknown_sample = serializers.ListField(child=serializers.CharField(), help_text="Some of them.")
    rejected = serializers.SerializerMethodField(help_text="Distinct ids refused (see errors); the others applied.")
    errors = serializers.SerializerMethodField(help_text="Each refused id: its index in `distinct_ids` and why.")

    def get_rejected(self, change) -> int:
        return len(change.rejected)

    @extend_schema_field(ItemErrorOutput(many=True))
    def get_errors(self, change) -> list[dict]:
        return ItemErrorOutput(change.rejected, many=True).data


class PreviewInput(ProjectScopedInput):
    definition = serializers.JSONField(help_text=DEFINITION_HELP)
    sample_size = serializers.IntegerField(min_value=0, max_value=PREVIEW_MAX_SAMPLE, default=10)


class PreviewOutput(serializers.Serializer):
    count = serializers.IntegerField()
    sample = ProfileOutput(many=True)


class ProjectQuery(ProjectScopedInput):
    """`?project=` for users of several projects (distinct ids are unique within a project)."""


class ParsedItemField(serializers.JSONField):
    """A batch item as the JSON parser built it, handed to the ingestion service, which checks it.
    (JSONField would encode each item again only to prove it is JSON: seconds a million events.)"""

    def to_internal_value(self, data):
        return data


class ProfilesInput(ProjectScopedInput):
    profiles = serializers.ListField(
        child=ParsedItemField(),
        help_text=f"At most {ingestion.MAX_BATCH:,} items, each {{\"distinct_id\", \"email\", \"first_name\", "
        "\"last_name\", \"phone_number\", \"set_once\": {…}, \"set\": {…}, \"add\": {name: number}, "
        "\"append\": {name: value}, \"union\": {name: [values]}, \"remove\": {name: value}, \"unset\": [names]}, "
        "the operations applied in that order. `add` adds to the stored number (absent: 0); `append`, `union` "
        "(the values not yet in it) and `remove` (every equal element) change the stored array. An item whose "
        "operation does not fit the stored value is refused whole.",
    )


class EventsInput(ProjectScopedInput):
    events = serializers.ListField(
        child=ParsedItemField(),
        help_text=f"At most {ingestion.MAX_BATCH:,} items, each {{\"distinct_id\", \"event\", \"time\" "
        "(ISO 8601 or unix seconds), \"properties\": {…}}.",
    )


class BatchResultOutput(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Items written.")
    rejected = serializers.IntegerField(help_text="Items refused (see errors); the others were written.")
    errors = ItemErrorOutput(many=True)


# --- Cohorts ----------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List cohorts"),
    retrieve=extend_schema(summary="Read a cohort, with its member count"),
    destroy=extend_schema(summary="Delete a cohort (and its syncs)"),
    create=extend_schema(summary="Create a cohort", request=CohortInput, responses={201: CohortDetailOutput}),
    partial_update=extend_schema(summary="Change a cohort", request=CohortUpdateInput, responses=CohortDetailOutput),
)
class CohortViewSet(ServiceCreate, ServiceUpdate,
                    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                    viewsets.GenericViewSet):
    """Static cohorts (explicit member lists) and rule cohorts (a definition over profiles and events)."""

    queryset = Cohort.objects.none()  # for the schema; get_queryset scopes it to the client
    serializer_class = CohortOutput
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]
    create_input, update_input, output = CohortInput, CohortUpdateInput, CohortDetailOutput

    def get_queryset(self):
        return cohort_list(projects=client_projects(self.request))

    def get_serializer_class(self):
        return CohortDetailOutput if self.action == "retrieve" else CohortOutput

    @extend_schema(methods=["GET"], summary="List members", responses=ProfileOutput(many=True),
                   parameters=[OpenApiParameter("cursor", str, description="From the previous page's `next`."),
                               OpenApiParameter("page_size", {"type": "integer", "minimum": 1, "maximum": 1000},
                                                description="1 to 1000 (default 100).")])
    @extend_schema(methods=["POST"], summary="Add members (static cohorts)", request=MembersInput,
                   responses=MembershipChangeOutput)
    @extend_schema(methods=["PUT"], summary="Replace all members (static cohorts)", request=MembersInput,
                   responses=MembershipChangeOutput)
    @action(detail=True, methods=["get", "post", "put"], pagination_class=IdCursorPagination)
    def members(self, request, pk=None):
        """GET: the members, a page at a time (by profile id). POST adds distinct ids, PUT makes the
        cohort hold exactly them; both only for static cohorts."""
        cohort = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(cohort_member_profiles(cohort=cohort).order_by("id"))
            return self.get_paginated_response(ProfileOutput(page, many=True).data)
        return self._change_members(cohort, mode="add" if request.method == "POST" else "replace")

    @extend_schema(summary="Remove members (static cohorts)", request=MembersInput, responses=MembershipChangeOutput)
    @action(detail=True, methods=["post"], url_path="members/remove")
    def members_remove(self, request, pk=None):
        return self._change_members(self.get_object(), mode="remove")

    def _change_members(self, cohort: Cohort, *, mode: str) -> Response:
        data = MembersInput(data=self.request.data)
        data.is_valid(raise_exception=True)
        change = cohort_members_import(cohort=cohort, distinct_ids=data.validated_data["distinct_ids"], mode=mode)
        return Response(MembershipChangeOutput(change).data)

    @extend_schema(summary="Preview a definition", request=PreviewInput, responses=PreviewOutput)
    @action(detail=False, methods=["post"])
    def preview(self, request):
        """The member count and a sample for an unsaved rule definition (nothing is stored)."""
        data = PreviewInput(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        count, sample = cohort_preview(project_id=data.validated_data["project"].pk,
                                       definition=data.validated_data["definition"],
                                       sample_size=data.validated_data["sample_size"])
        return Response(PreviewOutput({"count": count, "sample": sample}).data)

    def created(self, data: dict) -> Cohort:
        return cohort_create(**data)

    def changed(self, cohort: Cohort, data: dict) -> Cohort:
        return cohort_update(cohort=cohort, **data)


# --- Data in ------------------------------------------------------------------------------


def _batch_response(result: ingestion.BatchResult) -> Response:
    return Response(BatchResultOutput(
        {"accepted": result.accepted, "rejected": result.rejected, "errors": result.errors}
    ).data)


def _batch_too_large(field: str, error: ValidationError) -> serializers.ValidationError:
    return serializers.ValidationError({field: error.messages})


@extend_schema_view(
    retrieve=extend_schema(summary="Read a profile", parameters=[ProjectQuery]),
    destroy=extend_schema(summary="Delete a profile (it leaves every cohort)", parameters=[ProjectQuery]),
)
class ProfileViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """People, by distinct id."""

    queryset = Profile.objects.none()  # for the schema; get_queryset scopes it to the client
    serializer_class = ProfileOutput
    lookup_field = "distinct_id"
    lookup_value_regex = r".+"  # distinct ids may hold slashes (send them as %2F)

    def get_queryset(self):
        return profile_list(projects=client_projects(self.request))

    def get_object(self):
        query = ProjectQuery(data=self.request.query_params, context=self.get_serializer_context())
        query.is_valid(raise_exception=True)
        if "\x00" in self.kwargs["distinct_id"]:
            raise Http404  # ingestion never stores one, and PostgreSQL cannot even compare it
        return get_object_or_404(self.get_queryset(), project=query.validated_data["project"],
                                 distinct_id=self.kwargs["distinct_id"])

    @extend_schema(summary="Create or update profiles (batch)", request=ProfilesInput,
                   responses={200: BatchResultOutput})
    def create(self, request):
        """Upsert by distinct id. Each refused item is reported with its index, field and reason; the
        accepted items are written all the same."""
        data = ProfilesInput(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        try:
            result = ingestion.profiles_upsert(project=data.validated_data["project"],
                                               items=data.validated_data["profiles"])
        except ValidationError as error:  # the batch as a whole (too large)
            raise _batch_too_large("profiles", error) from None
        return _batch_response(result)

    def destroy(self, request, distinct_id=None):
        profile = self.get_object()
        ingestion.profile_delete(project=profile.project, distinct_id=profile.distinct_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EventViewSet(viewsets.GenericViewSet):
    """Things people did (for rule cohorts' behaviour conditions)."""

    serializer_class = EventsInput

    @extend_schema(summary="Track events (batch)", request=EventsInput,
                   responses={200: BatchResultOutput})
    def create(self, request):
        """Each refused item is reported with its index, field and reason; the accepted ones are kept."""
        data = EventsInput(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        try:
            result = ingestion.events_track(project=data.validated_data["project"],
                                            items=data.validated_data["events"])
        except ValidationError as error:
            raise _batch_too_large("events", error) from None
        return _batch_response(result)
