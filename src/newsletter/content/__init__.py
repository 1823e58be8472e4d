"""Article sources: each turns something a blog publishes into ``Article`` cards."""

from .excerpt import make_excerpt
from .markdown import read_markdown_article, split_front_matter

__all__ = ["make_excerpt", "read_markdown_article", "split_front_matter"]
