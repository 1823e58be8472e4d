"""The web side: ``preview`` (a local view of the email while it is written)."""
