"""The `template` payload format: user-written bodies rendered in a bounded sandbox.

Jinja2's ImmutableSandboxedEnvironment blocks attribute escapes (`__class__`,
`__subclasses__`, ...) and mutation; on top of it we refuse what could run away or reach
outside (macros, includes, recursive or deeply nested loops), cap `range`, string and list
repetition, the output size and the render time, and allow only a short list of filters.
Templates see the same `input` object as Amplitude's cohort webhook templates.
"""

import time

import orjson
from django.core.exceptions import ValidationError
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_TEMPLATE_CHARS = 20_000
MAX_OUTPUT_CHARS = 5_000_000
MAX_RENDER_SECONDS = 2.0
MAX_LOOP_NESTING = 2
MAX_RANGE = 1000
MAX_VALUE_CHARS = 10_000  # one repeated or replaced value; bounds what a single expression can build
ALLOWED_FILTERS = frozenset({
    "json", "tojson", "default", "d", "lower", "upper", "capitalize", "title", "trim", "string", "int", "float",
    "round", "abs", "length", "count", "join", "replace", "first", "last", "list", "sort", "unique", "min", "max",
    "sum", "dictsort", "items", "truncate",
})
# No variables ({% set %}, {% with %}): with them a few lines could double a string a
# thousand times. Without them every value is bounded by the template's own length.
FORBIDDEN_NODES = (nodes.Macro, nodes.CallBlock, nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends,
                   nodes.Block, nodes.FilterBlock, nodes.Assign, nodes.AssignBlock, nodes.With)
FORBIDDEN_NAMES = {"Assign": "set", "AssignBlock": "set", "With": "with", "FilterBlock": "filter",
                   "CallBlock": "call", "FromImport": "from"}

# The three example templates of Amplitude's cohort webhook docs, in our template language.
PRESETS = {
    "amplitude_user_ids": """{
  "cohort_name": {{ input.cohort_name | json }},
  "cohort_id": {{ input.cohort_id | json }},
  "in_cohort": {{ input.in_cohort | json }},
  "computed_time": {{ input.computed_time | json }},
  "message_id": {{ input.message_id | json }},
  "users": [{% for user in input.users %}
    {"user_id": {{ user.user_id | json }}}{% if not loop.last %},{% endif %}{% endfor %}
  ]
}
""",
    "amplitude_user_properties": """{
  "cohort_name": {{ input.cohort_name | json }},
  "cohort_id": {{ input.cohort_id | json }},
  "in_cohort": {{ input.in_cohort | json }},
  "computed_time": {{ input.computed_time | json }},
  "message_id": {{ input.message_id | json }},
  "users": [{% for user in input.users %}
    {
      "user_id": {{ user.user_id | json }},
      "user_properties": {{ '{' }}{% for key, value in user.user_properties | dictsort %}
        {{ key | json }}: {{ value | json }}{% if not loop.last %},{% endif %}{% endfor %}
      {{ '}' }}
    }{% if not loop.last %},{% endif %}{% endfor %}
  ]
}
""",
    "amplitude_per_user": """[{% for user in input.users %}
  {
    "user_id": {{ user.user_id | json }},
    {{ ("amplitude_" ~ input.cohort_name ~ "_" ~ input.cohort_id) | json }}: {{ input.in_cohort | json }}
  }{% if not loop.last %},{% endif %}{% endfor %}
]
""",
}


class PayloadTemplateError(Exception):
    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


def _json(value) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _capped_range(*args):
    span = range(*args)
    if len(span) > MAX_RANGE:
        raise SecurityError(f"range() is limited to {MAX_RANGE} items")
    return span


class PayloadEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        if operator == "**":
            raise SecurityError("the ** operator is not allowed")
        for sequence, times in ((left, right), (right, left)):
            if isinstance(sequence, (str, list, tuple)) and isinstance(times, int):
                if len(sequence) * max(times, 0) > MAX_VALUE_CHARS:
                    raise SecurityError(f"repetition is limited to {MAX_VALUE_CHARS} characters or items")
        return super().call_binop(context, operator, left, right)


def _capped_replace(value, old, new, count=None):
    result = str(value).replace(str(old), str(new), -1 if count is None else count)
    if len(result) > max(MAX_VALUE_CHARS, len(str(value))):
        raise SecurityError(f"replace() may not grow a value past {MAX_VALUE_CHARS} characters")
    return result


def _environment() -> PayloadEnvironment:
    env = PayloadEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters = {name: f for name, f in env.filters.items() if name in ALLOWED_FILTERS}
    env.filters["json"] = _json
    env.filters["replace"] = _capped_replace
    env.globals = {"range": _capped_range}
    return env


ENVIRONMENT = _environment()


def compile_template(source: str):
    if len(source) > MAX_TEMPLATE_CHARS:
        raise PayloadTemplateError(f"the template is longer than {MAX_TEMPLATE_CHARS} characters")
    try:
        tree = ENVIRONMENT.parse(source)
    except TemplateSyntaxError as exc:
        raise PayloadTemplateError(exc.message or "syntax error", exc.lineno) from None
    _check_tree(tree)
    try:
        return ENVIRONMENT.from_string(tree)
    except TemplateError as exc:  # e.g. an unknown filter
        raise PayloadTemplateError(str(exc), getattr(exc, "lineno", None)) from None


def _check_tree(node, depth: int = 0) -> None:
    if isinstance(node, FORBIDDEN_NODES):
        name = FORBIDDEN_NAMES.get(type(node).__name__, type(node).__name__.lower())
        raise PayloadTemplateError(f"{{% {name} %}} is not allowed in payload templates", node.lineno)
    if isinstance(node, nodes.For):
        if node.recursive:
            raise PayloadTemplateError("recursive loops are not allowed", node.lineno)
        depth += 1
        if depth > MAX_LOOP_NESTING:
            raise PayloadTemplateError(f"loops may nest at most {MAX_LOOP_NESTING} deep", node.lineno)
    if isinstance(node, nodes.Filter) and node.name not in ENVIRONMENT.filters:
        raise PayloadTemplateError(f"unknown or disallowed filter {node.name!r}", node.lineno)
    for child in node.iter_child_nodes():
        _check_tree(child, depth)


def render_template(template, payload_input: dict) -> str:
    """Render with the output and time caps; errors carry the template line when known."""
    started = time.monotonic()
    parts: list[str] = []
    size = 0
    try:
        for chunk in template.generate(input=payload_input):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise PayloadTemplateError(f"the output is larger than {MAX_OUTPUT_CHARS} characters")
            if time.monotonic() - started > MAX_RENDER_SECONDS:
                raise PayloadTemplateError(f"rendering took longer than {MAX_RENDER_SECONDS:g} s")
            parts.append(chunk)
    except PayloadTemplateError:
        raise
    except (SecurityError, TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        raise PayloadTemplateError(_reason(exc), _error_line(exc)) from None
    return "".join(parts)


def _reason(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return message.splitlines()[0]


def _error_line(exc: Exception) -> int | None:
    # Jinja rewrites tracebacks so the template's own frame carries the template line.
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def validate_template(source: str, *, content_type: str, sample_input: dict) -> None:
    """Refuse a template that fails on a sample page or (for JSON) does not produce JSON."""
    try:
        output = render_template(compile_template(source), sample_input)
    except PayloadTemplateError as exc:
        raise ValidationError({"body_template": str(exc)}) from None
    if "json" in content_type.lower():
        try:
            orjson.loads(output)
        except orjson.JSONDecodeError as exc:
            line = output.count("\n", 0, exc.pos) + 1
            raise ValidationError(
                {"body_template": f"the rendered sample is not valid JSON (output line {line}: {exc.msg})"}
            ) from None
