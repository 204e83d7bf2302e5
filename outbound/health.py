"""Health of a subject that runs (a sync, a user message): one definition for every page.

- `paused`: it sends nothing until someone resumes it;
- `failing`: it is active and holds the receiver's last refusal (`last_error_message`, cleared
  by the next success). A finished one-time sync is not failing: it will not run again;
- otherwise its state (`active`, `finished`).

Paused first, then failing, then the rest: the order of the status pages and admin lists.
"""

from django.db import models
from django.db.models import Case, F, Q, Value, When

PAUSED, ACTIVE = "paused", "active"
FAILING = Q(state=ACTIVE) & ~Q(last_error_message="")
HEALTH = Case(When(state=PAUSED, then=Value(PAUSED)), When(FAILING, then=Value("failing")), default=F("state"))
# 0 paused, 1 failing, 2 the rest: order by it to show what needs someone first.
ATTENTION = Case(When(state=PAUSED, then=Value(0)), When(FAILING, then=Value(1)), default=Value(2))


def health_of(subject) -> str:
    """The same answer for one object already in memory."""
    if subject.state == ACTIVE and subject.last_error_message:
        return "failing"
    return subject.state


class HealthQuerySet(models.QuerySet):
    def failing(self) -> "HealthQuerySet":
        return self.filter(FAILING)

    def needing_attention(self) -> "HealthQuerySet":
        return self.filter(Q(state=PAUSED) | FAILING)

    def with_health(self) -> "HealthQuerySet":
        """Each row carries `health`; the alias `attention` orders them (see ATTENTION)."""
        return self.annotate(health=HEALTH).alias(attention=ATTENTION)
