"""tollway: a self-hostable LLM API gateway and token-usage observatory."""

__version__ = "0.1.0"
