"""The pages `newsletter serve` answers with, from the Jinja2 templates in ``templates/``.

One environment renders them all. It escapes every value (autoescape, so what a request,
a subscriber or a campaign carries stays text) and refuses a name a page was not given
(StrictUndefined), so a misspelt field fails in the tests instead of showing nothing.
The markup of our own lives in the templates; nothing is marked safe.
"""

from __future__ import annotations

import jinja2

from ..language import DEFAULT_LANGUAGE, direction_context

_PAGES = jinja2.Environment(
    loader=jinja2.PackageLoader("newsletter.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def page(title: str, message: str = "", template: str = "page.html", **context: object) -> str:
    """A page of the site: ``title`` and ``message`` (a paragraph, left out when empty) are
    text, as is everything in ``context``; ``template`` adds its own markup below them.
    ``lang`` and ``dir`` (see ``direction_context``) are English's unless given."""
    values = {**direction_context(DEFAULT_LANGUAGE), **context}
    return _PAGES.get_template(template).render(title=title, message=message, **values)
