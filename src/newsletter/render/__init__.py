"""Rendering: a campaign compiled once per variant, then merged for each reader.

The per-reader path, one module per step:

- ``compile``: ``compile_campaign`` (Jinja2 -> MJML -> HTML -> inlined CSS -> text ->
  split at tokens), once per campaign variant; ``CompiledCampaign.personalize`` gives
  a reader's variant and values;
- ``rewrite``: the templates' syntax rewritten where they use ``recipient``, into
  ``slots`` (values per reader) and decisions;
- ``variants``: the decisions over the reader and the variants compiled on demand;
- ``merge``: per reader, the reader's values joined into the literal pieces;
- ``message``: the reader's message, as MIME bytes or for an HTTP API.

Beside them: ``templates`` (the Jinja2 environment), ``placeholders`` (the tokens),
``reader`` (``recipient``), ``mjml``, ``text`` and ``headers``.
"""

from .compile import (
    CompiledCampaign,
    FieldCatalog,
    NewsletterInfo,
    compile_campaign,
    list_id_for,
)
from .merge import Personal
from .message import MessageFactory, OutgoingMessage
from .variants import Variant

__all__ = [
    "CompiledCampaign",
    "FieldCatalog",
    "MessageFactory",
    "NewsletterInfo",
    "OutgoingMessage",
    "Personal",
    "Variant",
    "compile_campaign",
    "list_id_for",
]
