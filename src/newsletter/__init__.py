"""newsletter: turn a blog's articles into an email digest and send it, once, to everyone."""

__version__ = "0.1.0"
