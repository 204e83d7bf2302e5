"""The admin's tenancy: staff who are not superusers see, change and choose only the objects of
the projects they are members of (the REST API's rule, access/api.py, applied to the admin)."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Model, Q, QuerySet
from django.forms import ModelChoiceField

from cohorts.models import Project


def member_projects(user) -> QuerySet[Project]:
    return Project.objects.filter(members=user)


class ProjectScopedAdmin:
    """Mixin for every ModelAdmin (first in the bases). `project_paths`: lookups from the model to its
    project, several when an object belongs through one of them (e.g. an attempt: a sync run, a
    message run or an alert firing)."""

    project_paths: tuple[str, ...] = ("project",)

    def scope_to_projects(self, queryset: QuerySet, projects: QuerySet[Project]) -> QuerySet:
        condition = Q()
        for path in self.project_paths:
            condition |= Q(**{f"{path}__in": projects})
        return queryset.filter(condition)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return self.scope_to_projects(queryset, member_projects(request.user))

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if request.user.is_superuser:
            return form
        admin_site = self.admin_site

        class ProjectScopedForm(form):
            # After the form's own __init__, which may set its choices (e.g. to one project's).
            def __init__(self, *args, **form_kwargs):
                super().__init__(*args, **form_kwargs)
                for field in self.fields.values():
                    if isinstance(field, ModelChoiceField):
                        field.queryset = scoped_choices(field.queryset, user=request.user, admin_site=admin_site)

        ProjectScopedForm.__name__ = form.__name__
        return ProjectScopedForm

    def get_list_filter(self, request):
        list_filter = super().get_list_filter(request)
        if request.user.is_superuser:
            return list_filter
        # A relation's filter lists every related object; RelatedOnly lists those in the scoped list.
        return [(name, admin.RelatedOnlyFieldListFilter) if isinstance(name, str) and _is_relation(self.model, name)
                else name for name in list_filter]


def scoped_choices(queryset: QuerySet, *, user, admin_site) -> QuerySet:
    """The objects of `queryset` that `user` may pick: those of their projects (people: members of them)."""
    projects = member_projects(user)
    model = queryset.model
    if model is Project:
        return queryset.filter(pk__in=projects)
    if model is get_user_model():
        return queryset.filter(projects__in=projects).distinct()
    model_admin = admin_site._registry.get(model)
    if isinstance(model_admin, ProjectScopedAdmin):
        return model_admin.scope_to_projects(queryset, projects)
    if any(field.name == "project" for field in model._meta.get_fields()):
        return queryset.filter(project__in=projects)
    return queryset


def _is_relation(model: type[Model], name: str) -> bool:
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:  # a lookup path: left as it is
        return False
    return field.is_relation
