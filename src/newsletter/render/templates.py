"""The Jinja2 environment: a project's ``templates/`` overrides the built-in files.

Templates render in Jinja2's sandbox, with every use of ``recipient`` rewritten
as it is parsed (see ``rewrite``) into slots, decisions and deferred values of
the build's ``ReaderPlan``. Filters and tests that look inside text are guarded:
applied to text that holds a reader's placeholder, they would see the placeholder,
not the reader's value, so they refuse it and say what to write instead.

Autoescaping applies to HTML only (``.mjml``, ``.html``, ``.xml`` and the
campaign's Markdown text, which becomes HTML); the subject, the greeting and the
``.txt`` templates show ``&``, ``<`` and quotes as typed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment

from ..errors import TemplateError
from .placeholders import NonceCollision
from .reader import READER_METHODS, Reader
from .rewrite import DECIDE, DEFER, ITER, OUT, Rewriter
from .variants import ReaderPlan, RefusedHere

BUILTIN_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

# The campaign file's own parts, as templates: the extension chooses autoescaping.
BODY, SUBJECT, GREETING = "campaign:body.html", "campaign:subject.txt", "campaign:greeting.txt"


# Filters that only move or mark text around a token, never look inside it.
TRANSPARENT_FILTERS = frozenset(
    {"safe", "e", "escape", "forceescape", "string", "wordwrap", "indent", "trim", "default", "d"}
)
TRANSPARENT_TESTS = frozenset({"defined", "undefined", "none", "string", "sameas"})


class PersonalEnvironment(SandboxedEnvironment):
    """Jinja2's sandbox, rewriting every template's uses of ``recipient`` as it is parsed."""

    def __init__(self, plan: ReaderPlan, **options: Any) -> None:
        super().__init__(**options)
        self.plan = plan
        self.sources: dict[str, str] = {}
        self.globals.update(
            {
                OUT: plan.out,
                DECIDE: lambda i, c: plan.decide(i, c, loop=False),
                ITER: lambda i, c: plan.decide(i, c, loop=True),
                DEFER: plan.defer,
            }
        )

    def guard(self) -> None:
        """Make every filter and test (but those that only move text around) refuse text
        that holds a reader's field; call once the filters are all registered."""
        nonce = self.plan.tokens.nonce
        self.filters = {
            name: f if name in TRANSPARENT_FILTERS else _guarded(name, "filter", f, nonce)
            for name, f in self.filters.items()
        }
        self.tests = {
            name: f if name in TRANSPARENT_TESTS else _guarded(name, "test", f, nonce)
            for name, f in self.tests.items()
        }

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        if self.plan.tokens.occurs_in(source):
            raise NonceCollision
        template = super()._parse(source, name, filename)
        label = getattr(self, "display_names", {}).get(name, name or "<template>")
        self.sources[label] = source
        Rewriter(self, name or "<template>", label, source).rewrite(template)
        return template

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is Reader and attribute not in READER_METHODS and attribute[:1] != "_":
            # ``recipient.NAME``: what the sandbox's lookup gives (a field, never an
            # internal attribute), without the failed attribute lookup before __getattr__.
            return obj._field(attribute)
        self._refuse_token_text(obj, f"`.{attribute}` is taken of")
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self._refuse_token_text(obj, "a part (`[...]`) is taken of")
        return super().getitem(obj, argument)

    def _refuse_token_text(self, obj: Any, what: str) -> None:
        if isinstance(obj, str) and self.plan.tokens.nonce in obj:
            raise RefusedHere(_token_text_message(what))

    def is_safe_callable(self, obj: Any) -> bool:
        return super().is_safe_callable(obj)


def _token_text_message(action: str) -> str:
    return (
        f"{action} text that holds a reader's field (the greeting, or text with a "
        "{{ recipient... }} in it), so it would see a placeholder instead of each reader's "
        "value. Apply it to the field itself, e.g. {{ recipient.first_name | upper }}"
    )


def _guarded(name: str, kind: str, func: Callable[..., Any], nonce: str) -> Callable[..., Any]:
    """``func`` refusing any argument that is text holding a reader's field."""

    def guarded(*args: Any, **kwargs: Any) -> Any:
        for value in args:
            if isinstance(value, str) and nonce in value:
                raise RefusedHere(_token_text_message(f"the {kind} `{name}` is applied to"))
        if kwargs:
            for value in kwargs.values():
                if isinstance(value, str) and nonce in value:
                    raise RefusedHere(_token_text_message(f"the {kind} `{name}` is applied to"))
        return func(*args, **kwargs)

    guarded.__dict__.update(getattr(func, "__dict__", {}))  # keeps jinja_pass_arg
    guarded.__name__ = getattr(func, "__name__", name)
    guarded.__doc__ = func.__doc__
    return guarded


def make_environment(
    project_templates: Path | None,
    plan: ReaderPlan,
    campaign_parts: dict[str, str] | None = None,
    display_names: dict[str, str] | None = None,
) -> PersonalEnvironment:
    """The environment for one build: the campaign's parts, the project's templates, ours."""
    loaders: list[jinja2.BaseLoader] = []
    if campaign_parts:
        loaders.append(jinja2.DictLoader(campaign_parts))
    if project_templates is not None and project_templates.is_dir():
        loaders.append(jinja2.FileSystemLoader(project_templates))
    loaders.append(jinja2.FileSystemLoader(BUILTIN_TEMPLATES))
    env = PersonalEnvironment(
        plan,
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("mjml", "html", "xml"), default_for_string=False
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.display_names = dict(display_names or {})
    env.filters["date"] = _format_date
    env.guard()
    return env


def plain_environment() -> jinja2.Environment:
    """A sandboxed environment for one-line settings such as ``[digest] subject``: no
    autoescaping, no files, and nothing about readers."""
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters["date"] = _format_date
    return env


_TAG_START = ("{{", "{%", "{#")


def literal(text: str) -> str:
    """Template source that renders as ``text`` exactly: for values written into files
    that are later rendered (a digest's subject), so text from articles and feeds is
    printed, never run."""
    if not any(tag in text for tag in _TAG_START):
        return text
    if "endraw" not in text.lower():
        return "{% raw %}" + text + "{% endraw %}"
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return '{{ "' + quoted + '" }}'


def _format_date(value: Any, fmt: str = "%B %-d, %Y") -> str:
    return value.strftime(fmt) if value else ""


def display_name(env: jinja2.Environment, name: str) -> str:
    return getattr(env, "display_names", {}).get(name, name)


def render_template(env: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
    """Render ``name``, turning any Jinja2 failure into a TemplateError with its place."""
    shown = display_name(env, name)
    try:
        template = env.get_template(name)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(
            f"Template '{exc.name}' was not found.",
            "Built-in templates are digest, announcement and plain; a project's own "
            "go in its templates/ folder as NAME.mjml (and optionally NAME.txt).",
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        where = display_name(env, exc.name) if exc.name else shown
        raise TemplateError(
            f"{where}, line {exc.lineno}: template syntax error: {exc.message}."
        ) from None
    return render_string_template(template, context, shown, env)


def render_string(
    env: jinja2.Environment, source: str, context: dict[str, Any], origin: str
) -> str:
    """Render Jinja2 text that is not a template file."""
    try:
        template = env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"{origin}, line {exc.lineno}: template syntax error: {exc.message}."
        ) from None
    return render_string_template(template, context, origin, env)


def render_string_template(
    template: jinja2.Template,
    context: dict[str, Any],
    origin: str,
    env: jinja2.Environment | None = None,
) -> str:
    try:
        return template.render(context)
    except jinja2.UndefinedError as exc:
        raise TemplateError(
            f"{origin}{_where(exc, origin, env)}: {exc.message}.",
            "A template variable is not defined: check its spelling. A reader's own fields "
            "are under `recipient` (recipient.first_name, recipient.get('city', 'fallback')).",
        ) from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{origin}{_where(exc, origin, env)}: {exc}.") from None


def _where(exc: BaseException, origin: str, env: jinja2.Environment | None = None) -> str:
    """', line N' (and the template file) from the traceback of a render error."""
    tb = exc.__traceback__
    found = ""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith((".mjml", ".txt", ".html")) or filename == "<template>":
            name = Path(filename).name if filename != "<template>" else ""
            if env is not None and name.startswith("campaign:"):
                name = display_name(env, name)
            elif env is not None and filename.startswith("campaign:"):
                name = display_name(env, filename)
            found = (
                f" ({name}, line {tb.tb_lineno})"
                if name and name not in origin
                else f", line {tb.tb_lineno}"
            )
        tb = tb.tb_next
    return found
