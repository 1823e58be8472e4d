"""The Jinja2 environment: a project's ``templates/`` overrides the built-in files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from ..errors import TemplateError

BUILTIN_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def make_environment(project_templates: Path | None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if project_templates is not None and project_templates.is_dir():
        loaders.append(jinja2.FileSystemLoader(project_templates))
    loaders.append(jinja2.FileSystemLoader(BUILTIN_TEMPLATES))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("mjml", "html", "xml")),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["date"] = _format_date
    return env


def _format_date(value: Any, fmt: str = "%B %-d, %Y") -> str:
    return value.strftime(fmt) if value else ""


def render_template(env: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
    """Render ``name``, turning any Jinja2 failure into a TemplateError with its place."""
    try:
        template = env.get_template(name)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(
            f"Template '{exc.name}' was not found.",
            "Built-in templates are digest, announcement and plain; a project's own "
            "go in its templates/ folder as NAME.mjml (and optionally NAME.txt).",
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"{exc.filename or name}, line {exc.lineno}: template syntax error: {exc.message}."
        ) from None
    return render_string_template(template, context, name)


def render_string(
    env: jinja2.Environment, source: str, context: dict[str, Any], origin: str
) -> str:
    """Render Jinja2 text that is not a template file (a subject, a campaign's body)."""
    try:
        template = env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"{origin}, line {exc.lineno}: template syntax error: {exc.message}."
        ) from None
    return render_string_template(template, context, origin)


def render_string_template(template: jinja2.Template, context: dict[str, Any], origin: str) -> str:
    try:
        return template.render(context)
    except jinja2.UndefinedError as exc:
        raise TemplateError(
            f"{origin}{_where(exc, origin)}: {exc.message}.",
            "A template variable is not defined: check its spelling. A reader's own fields "
            "are under `recipient` (recipient.first_name, recipient.get('city', 'fallback')).",
        ) from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{origin}{_where(exc, origin)}: {exc}.") from None


def _where(exc: BaseException, origin: str) -> str:
    """', line N' (and the template file) from the traceback of a render error."""
    tb = exc.__traceback__
    found = ""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith((".mjml", ".txt", ".html")) or filename == "<template>":
            name = Path(filename).name if filename != "<template>" else ""
            found = (
                f" ({name}, line {tb.tb_lineno})"
                if name and name not in origin
                else f", line {tb.tb_lineno}"
            )
        tb = tb.tb_next
    return found
