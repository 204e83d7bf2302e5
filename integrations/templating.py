"""The `template` payload format: user-written bodies rendered in a bounded sandbox.

Jinja2's ImmutableSandboxedEnvironment blocks attribute escapes (`__class__`,
`__subclasses__`, ...) and mutation; on top of it we refuse what could run away or reach
outside (macros, includes, recursive or deeply nested loops), cap `range`, string and list
repetition, the output size and the render time, and allow only a short list of filters.
Templates see the same `input` object as Amplitude's cohort webhook templates.

Memory is bounded by a per-render budget of built text: every operation that can grow a
value (repetition, `+`, `~`, `join`, `replace`, `json`, `string`, printing a structure) is
charged, before it builds when the size can be known; methods that pad or rebuild text
(`ljust`, `center`, `zfill`, `format`, `%`, `str.replace`, ...) are not callable at all.
Time is checked on every loop iteration as well as on every chunk of output.
"""

import contextvars
import time
from collections.abc import ItemsView, Iterable, KeysView, Mapping, ValuesView
from dataclasses import dataclass

import orjson
from django.core.exceptions import ValidationError
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, Undefined, UndefinedError, nodes, pass_context
from jinja2.filters import do_dictsort, do_truncate, make_attrgetter, pass_environment
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_TEMPLATE_CHARS = 20_000
MAX_OUTPUT_CHARS = 5_000_000
MAX_BUILT_CHARS = 10_000_000  # text one render may build in values on the way to its output
MAX_RENDER_SECONDS = 2.0
MAX_LOOP_NESTING = 2
MAX_RANGE = 1000
MAX_VALUE_CHARS = 10_000  # one repeated or replaced value; bounds what a single expression can build
# Nesting of the template's syntax tree: far below Python's recursion limit, so that what parses
# and compiles at save also does at send, on a deeper stack.
MAX_NESTING = 40
MAX_NUMBER_BITS = 256  # integer literals and arithmetic results: str() of a huge int raises
ALLOWED_FILTERS = frozenset({
    "json", "tojson", "default", "d", "lower", "upper", "capitalize", "title", "trim", "string", "int", "float",
    "round", "abs", "length", "count", "join", "replace", "first", "last", "list", "sort", "unique", "min", "max",
    "sum", "dictsort", "items", "truncate",
})
# Methods a template may call on plain values: none of them can grow a value. Everything
# else on text, numbers and containers (ljust, center, zfill, format, to_bytes, ...) is refused.
SAFE_METHODS = {
    str: frozenset({
        "lower", "upper", "strip", "lstrip", "rstrip", "title", "capitalize", "casefold", "swapcase",
        "startswith", "endswith", "split", "rsplit", "splitlines", "partition", "rpartition",
        "removeprefix", "removesuffix", "count", "find", "rfind", "index", "rindex", "isdigit", "isalpha",
        "isalnum", "isspace", "islower", "isupper", "isnumeric", "isdecimal", "istitle", "isascii",
    }),
    Mapping: frozenset({"get", "keys", "values", "items"}),
    (list, tuple): frozenset({"index", "count"}),
    (bytes, int, float, set, frozenset): frozenset(),
}
# No variables ({% set %}, {% with %}): with them a few lines could double a string a
# thousand times. Without them every value is bounded by the template's own length.
FORBIDDEN_NODES = (nodes.Macro, nodes.CallBlock, nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends,
                   nodes.Block, nodes.FilterBlock, nodes.Assign, nodes.AssignBlock, nodes.With)
FORBIDDEN_NAMES = {"Assign": "set", "AssignBlock": "set", "With": "with", "FilterBlock": "filter",
                   "CallBlock": "call", "FromImport": "from"}

# The fields both of Amplitude's cohort-level example bodies open with.
_AMPLITUDE_COHORT_FIELDS = """{
  "cohort_name": {{ input.cohort_name | json }},
  "cohort_id": {{ input.cohort_id | json }},
  "in_cohort": {{ input.in_cohort | json }},
  "computed_time": {{ input.computed_time | json }},
  "message_id": {{ input.message_id | json }},
"""
# The three example templates of Amplitude's cohort webhook docs, in our template language.
PRESETS = {
    "amplitude_user_ids": _AMPLITUDE_COHORT_FIELDS + """  "users": [{% for user in input.users %}
    {"user_id": {{ user.user_id | json }}}{% if not loop.last %},{% endif %}{% endfor %}
  ]
}
""",
    "amplitude_user_properties": _AMPLITUDE_COHORT_FIELDS + """  "users": [{% for user in input.users %}
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


class RenderLimitError(SecurityError):
    """A render ran past its time or built-text budget (raised inside the template, so it has a line)."""


# --- The render budget: time and built text, per render ----------------------------------


@dataclass
class _RenderState:
    deadline: float
    remaining: int  # characters of text the render may still build


_RENDER: contextvars.ContextVar[_RenderState | None] = contextvars.ContextVar("payload_render", default=None)


def _check_time() -> None:
    state = _RENDER.get()
    if state is not None and time.monotonic() > state.deadline:
        raise RenderLimitError(f"rendering took longer than {MAX_RENDER_SECONDS:g} s")


def _remaining() -> int:
    state = _RENDER.get()
    return state.remaining if state is not None else MAX_BUILT_CHARS


def _charge(chars: int) -> None:
    """Count text about to be (or just) built; outside a render (constant folding) nothing counts."""
    state = _RENDER.get()
    if state is None:
        return
    state.remaining -= chars
    if state.remaining < 0:
        raise RenderLimitError(f"the template builds more than {MAX_BUILT_CHARS} characters of text")


def _size_at_most(value, limit: int) -> int:
    """About how long `value` is as text (JSON-like); stops counting past `limit`."""
    size = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            size += len(item) + 2
        elif isinstance(item, Mapping):
            size += 2 + 2 * len(item)
            if size <= limit:
                for key, inner in item.items():
                    stack.append(key)
                    stack.append(inner)
        elif isinstance(item, (list, tuple, set, frozenset, KeysView, ValuesView, ItemsView)):
            size += 2 + len(item)
            if size <= limit:
                stack.extend(item)
        else:
            size += 24  # a number, a boolean, None or a small object
        if size > limit:
            return limit + 1
    return size


def _admit(value) -> None:
    """Refuse to turn a structure into text when it would not fit the budget."""
    remaining = _remaining()
    if _size_at_most(value, remaining) > remaining:
        raise RenderLimitError(f"the template builds more than {MAX_BUILT_CHARS} characters of text")


# --- Filters and globals ------------------------------------------------------------------


SCALARS = (str, int, float, bool, type(None))  # bounded by their own size: no need to measure first


def _json(value) -> str:
    if not isinstance(value, SCALARS):
        _admit(value)
    try:
        text = orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError as exc:
        if isinstance(exc.__cause__, UndefinedError):
            raise exc.__cause__ from None  # "'dict object' has no attribute 'x'", not "not serializable"
        raise
    _charge(len(text))
    return text


def _json_default(value):
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _tojson(value, indent=None) -> str:
    if indent is not None:
        raise SecurityError("tojson(indent=...) is not supported: bodies are compact JSON")
    return _json(value)


def _text(value) -> str:
    """`string`, each operand of `~` and every printed value: str(), charged."""
    if isinstance(value, str):
        _charge(len(value))
        return value
    _admit(value)
    text = str(value)
    _charge(len(text))
    return text


def _finalize(value):
    # Text that reaches the output was charged when built (or is the page's own data).
    return value if isinstance(value, str) else _text(value)


def _join(value, d="", attribute=None) -> str:
    items = list(value)
    if attribute is not None:
        getter = make_attrgetter(ENVIRONMENT, attribute)
        items = [getter(item) for item in items]
    separator = _text(d)
    _charge(len(separator) * max(len(items) - 1, 0))
    return separator.join([_text(item) for item in items])


def _list(value) -> list:
    items = list(value)
    _charge(len(items))
    return items


def _sum(iterable, attribute=None, start=0):
    if attribute is not None:
        getter = make_attrgetter(ENVIRONMENT, attribute)
        iterable = map(getter, iterable)
    items = [start, *iterable]
    if not all(isinstance(item, (int, float)) for item in items):
        raise SecurityError("sum() adds numbers only")
    return sum(items)


def _capped_replace(value, old, new, count=None):
    value, old, new = str(value), str(old), str(new)
    occurrences = value.count(old) if old else len(value) + 1
    if count is not None and count >= 0:
        occurrences = min(occurrences, count)
    size = len(value) + occurrences * (len(new) - len(old))
    if size > max(MAX_VALUE_CHARS, len(value)):
        raise SecurityError(f"replace() may not grow a value past {MAX_VALUE_CHARS} characters")
    _charge(size)
    return value.replace(old, new, -1 if count is None else count)


def _truncate(env, value, length=255, killwords=False, end="...", leeway=None):
    if isinstance(length, int) and isinstance(end, str) and len(end) > length:
        raise SecurityError(f"truncate(): the end text ({len(end)} characters) is longer than the length ({length})")
    return do_truncate(env, value, length, killwords, end, leeway)


def _dictsort(value, case_sensitive=False, by="key", reverse=False):
    if not isinstance(value, Mapping):
        raise SecurityError(f"dictsort sorts an object's items, not {type(value).__name__} values")
    return do_dictsort(value, case_sensitive, by, reverse)


def _capped_range(*args):
    span = range(*args)
    if len(span) > MAX_RANGE:
        raise SecurityError(f"range() is limited to {MAX_RANGE} items")
    return span


@pass_context
def _tick(context, value):
    """Injected into every loop: an empty loop body must not outrun the time cap either."""
    _check_time()
    return value


class PayloadEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def is_safe_attribute(self, obj, attr, value) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if callable(value):
            for types, methods in SAFE_METHODS.items():
                if isinstance(obj, types):
                    return attr in methods
        return True

    def wrap_str_format(self, value):
        # Jinja would hand out a sandboxed str.format; its padding (`{:>999999999}`) still grows
        # text, so format and format_map stay refused by is_safe_attribute instead.
        return None

    def call_binop(self, context, operator, left, right):
        if operator == "**":
            raise SecurityError("the ** operator is not allowed")
        if operator == "%" and isinstance(left, str):
            raise SecurityError("%-formatting of text is not allowed; join text with ~")
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(times, int):
                    times = max(times, 0)
                    if len(sequence) * times > MAX_VALUE_CHARS:
                        raise SecurityError(f"repetition is limited to {MAX_VALUE_CHARS} characters or items")
                    size = len(sequence) if isinstance(sequence, str) else _size_at_most(sequence, _remaining())
                    _charge(times * size)
        if operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            remaining = _remaining()
            _charge(_size_at_most(left, remaining) + _size_at_most(right, remaining))
        if operator == "*" and isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_NUMBER_BITS:
                raise SecurityError(f"the product is too large (numbers are limited to {MAX_NUMBER_BITS} bits)")
        return super().call_binop(context, operator, left, right)


def _environment() -> PayloadEnvironment:
    env = PayloadEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True,
                             finalize=_finalize)
    env.filters = {name: f for name, f in env.filters.items() if name in ALLOWED_FILTERS}
    env.filters.update({"json": _json, "tojson": _tojson, "string": _text, "join": _join, "list": _list,
                        "sum": _sum, "replace": _capped_replace, "_tick": _tick,
                        "truncate": pass_environment(_truncate), "dictsort": _dictsort})
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
    except RecursionError:
        raise PayloadTemplateError(f"the template nests more than {MAX_NESTING} levels deep") from None
    except ValueError as exc:  # the lexer's int() of a literal of thousands of digits
        raise PayloadTemplateError(f"a number in the template is too large ({_reason(exc)})") from None
    _check_nesting(tree)
    _check_tree(tree)
    _instrument(tree)
    try:
        return ENVIRONMENT.from_string(tree)
    except TemplateError as exc:  # e.g. an unknown filter
        raise PayloadTemplateError(str(exc), getattr(exc, "lineno", None)) from None
    except (RecursionError, SyntaxError, MemoryError) as exc:  # Python's own compiler, past our limits
        raise PayloadTemplateError(f"the template cannot be compiled: {_reason(exc)}") from None


def _check_nesting(tree) -> None:
    """Refuse deep syntax trees and huge number literals, walking without recursion."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise PayloadTemplateError(f"the template nests more than {MAX_NESTING} levels deep", node.lineno)
        if isinstance(node, nodes.Const) and isinstance(node.value, int) and not isinstance(node.value, bool):
            if node.value.bit_length() > MAX_NUMBER_BITS:
                raise PayloadTemplateError(f"a number in the template is larger than {MAX_NUMBER_BITS} bits",
                                           node.lineno)
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())


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
    if isinstance(node, nodes.Filter) and node.name == "truncate":
        _check_truncate(node)
    for child in node.iter_child_nodes():
        _check_tree(child, depth)


def _check_truncate(node) -> None:
    """`truncate(3, end=".....")` raises on any text longer than 3: refuse it at save, not on a long name later."""
    arguments = dict(zip(("length", "killwords", "end", "leeway"), node.args))
    arguments.update({keyword.key: keyword.value for keyword in node.kwargs})
    length, end = arguments.get("length"), arguments.get("end")
    length = length.value if isinstance(length, nodes.Const) else (255 if length is None else None)
    end = end.value if isinstance(end, nodes.Const) else ("..." if end is None else None)
    if isinstance(length, int) and isinstance(end, str) and len(end) > length:
        raise PayloadTemplateError(
            f"truncate(): the end text ({len(end)} characters) is longer than the length ({length})", node.lineno)


def _instrument(tree) -> None:
    """Charge each operand of `~`, and check the clock on every loop iteration (and loop filter)."""
    for concat in tree.find_all(nodes.Concat):
        concat.nodes = [nodes.Filter(operand, "string", [], [], None, None, lineno=operand.lineno)
                        for operand in concat.nodes]
    for loop in tree.find_all(nodes.For):
        tick = nodes.Filter(nodes.Const(""), "_tick", [], [], None, None, lineno=loop.lineno)
        loop.body.insert(0, nodes.Output([tick], lineno=loop.lineno))
        if loop.test is not None:
            # "" or test: the test's own value, after the clock was checked.
            loop.test = nodes.Or(nodes.Filter(nodes.Const(""), "_tick", [], [], None, None, lineno=loop.lineno),
                                 loop.test, lineno=loop.lineno)


def render_template(template, payload_input: dict) -> str:
    """Render with the output, built-text and time caps; errors carry the template line when known."""
    state = _RenderState(deadline=time.monotonic() + MAX_RENDER_SECONDS, remaining=MAX_BUILT_CHARS)
    token = _RENDER.set(state)
    parts: list[str] = []
    size = 0
    try:
        for chunk in template.generate(input=payload_input):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise PayloadTemplateError(f"the output is larger than {MAX_OUTPUT_CHARS} characters")
            if time.monotonic() > state.deadline:
                raise PayloadTemplateError(f"rendering took longer than {MAX_RENDER_SECONDS:g} s")
            parts.append(chunk)
    except PayloadTemplateError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a template raises is the template's error, never ours
        raise PayloadTemplateError(_reason(exc), _error_line(exc)) from None
    finally:
        _RENDER.reset(token)
    output = "".join(parts)
    try:
        output.encode("utf-8")
    except UnicodeEncodeError as exc:
        # A lone surrogate (e.g. a "\ud800" literal) cannot go on the wire as UTF-8.
        raise PayloadTemplateError(f"the output is not valid text: {exc.reason} at character {exc.start}") from None
    return output


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


def validate_template(source: str, *, content_type: str, sample_inputs: Iterable[tuple[str, dict]]) -> None:
    """Refuse a template that fails on any sample page, named ("an empty page", "a full page",
    ...) so that edge cases fail at save rather than at send, or (for JSON) does not produce JSON."""
    try:
        template = compile_template(source)
    except PayloadTemplateError as exc:
        raise ValidationError({"body_template": str(exc)}) from None
    for index, (name, sample_input) in enumerate(sample_inputs):
        # The first sample is "the" sample of the docs; the edge cases after it say which failed.
        try:
            output = render_template(template, sample_input)
        except PayloadTemplateError as exc:
            raise ValidationError({"body_template": f"on {name}: {exc}" if index else str(exc)}) from None
        if is_json_content_type(content_type):
            try:
                orjson.loads(output)
            except orjson.JSONDecodeError as exc:
                line = output.count("\n", 0, exc.pos) + 1
                sample = f"the rendered sample of {name}" if index else "the rendered sample"
                raise ValidationError(
                    {"body_template": f"{sample} is not valid JSON (output line {line}: {exc.msg})"}
                ) from None


def is_json_content_type(content_type: str) -> bool:
    """application/json and the `+json` types; not NDJSON or JSON Lines (a document a line)."""
    subtype = content_type.split(";", 1)[0].strip().lower().partition("/")[2]
    return subtype == "json" or subtype.endswith("+json")
