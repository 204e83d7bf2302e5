from django.contrib import admin

from .models import Cohort, Profile, Project
from .selectors import cohort_member_count


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "id", "created_at"]
    filter_horizontal = ["members"]


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["distinct_id", "email", "first_name", "last_name", "project"]
    list_filter = ["project"]
    search_fields = ["distinct_id", "email"]
    show_full_result_count = False


@admin.register(Cohort)
class CohortAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "kind", "member_count", "updated_at"]
    list_filter = ["project", "kind"]
    readonly_fields = ["member_count"]

    @admin.display(description="members")
    def member_count(self, obj):
        return cohort_member_count(cohort=obj)
