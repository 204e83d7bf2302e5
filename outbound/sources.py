"""The kinds of source an attempt can have, registered by the apps built on the core.

The core never imports those apps: each registers its run (or firing) model from its
AppConfig.ready(), with how the attempts list should read and label it.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.db import models


@dataclass(frozen=True)
class AttemptSource:
    key: str  # the admin filter's value: "sync", "message", "alert"
    title: str  # the filter's option: "Sync runs"
    model: type[models.Model]
    label: Callable[[models.Model], str]  # "sync run #12"
    # Related rows the label needs, fetched with the sources of a page in one query each.
    select_related: tuple[str, ...] = ()
    # The lookup from the source to its project (e.g. "sync__cohort__project"): the admin shows
    # staff who are not superusers only the attempts of their projects' sources.
    project_path: str = "project"


SOURCES: dict[str, AttemptSource] = {}


def attempt_source_register(source: AttemptSource) -> None:
    SOURCES[source.key] = source


def attempt_source_for(model: type[models.Model]) -> AttemptSource | None:
    return next((source for source in SOURCES.values() if source.model is model), None)
