"""No secret leaves: provider keys are cut out of upstream errors, logs and ledger rows.

An upstream sometimes echoes the credential it was sent ("Incorrect API key provided:
sk-proj-abc...", a proxy dumping its request headers).  :meth:`Redactor.redact` is the one
function that removes them; it is applied where upstream errors enter the gateway
(:meth:`Redactor.scrub_error`, before an error is relayed in ``error.message`` /
``metadata.raw``, listed in ``attempts`` or stored in ``generations.error``) and to every
log record (:class:`RedactingFilter`).

What counts as a secret:

* every configured provider ``api_key`` (from the config or its environment variable),
  the admin key, passwords in the database and Redis URLs, and every provider header value
  whose name says it is a credential (``*key*``, ``*token*``, ``authorization``...) or that
  looks like one (16+ characters mixing letters and digits);
* anything that looks like one of those keys: its first 8 characters starting a word
  (a truncated echo), or a masked echo (``sk-pr****cret``);
* anything shaped like a common API key (``sk-...``, ``AIza...``, ``Bearer ...``), even
  if it is not ours: a relayed error has no reason to carry one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from tollway.config import ProviderConfig, Settings
from tollway.errors import TollwayError, UpstreamError

REDACTED = "[REDACTED]"
_MIN_SECRET = 8  # shorter values ("none", "1") would blot out ordinary words
_SECRET_HEADER = re.compile(r"key|token|auth|secret|passw|cookie|signature|credential", re.IGNORECASE)
_LOOKS_RANDOM = re.compile(r"^(?=.*[A-Za-z])(?=.*\d)[A-Za-z0-9._~+/=\-]{16,}$")
_KEY_SHAPES = (
    r"\bsk-[A-Za-z0-9_\-]{12,}",  # OpenAI, Anthropic (sk-ant-), DeepSeek, Moonshot, OpenRouter (sk-or-)...
    r"\bAIza[0-9A-Za-z_\-]{20,}",  # Google API keys
    r"(?i:\bbearer\s+)[A-Za-z0-9._~+/\-]{12,}=*",
    r"[A-Za-z0-9_\-]*[*\u2022]{4,}[A-Za-z0-9_\-]*",  # a masked echo of a key
)


def configured_secrets(settings: Settings, providers: Iterable[ProviderConfig] = ()) -> list[str]:
    """Every credential the configuration holds (see the module docstring)."""
    found: list[str] = []
    for provider in (*settings.providers, *providers):
        if provider.api_key is not None:
            found.append(provider.api_key.get_secret_value())
        for name, value in provider.headers.items():
            if _SECRET_HEADER.search(name) or _LOOKS_RANDOM.match(value):
                found.append(value.split(" ", 1)[1] if value.lower().startswith("bearer ") else value)
    if settings.admin_key is not None:
        found.append(settings.admin_key.get_secret_value())
    for url in (settings.database, settings.redis):
        if url:
            try:
                password = urlsplit(url).password
            except ValueError:
                password = None
            if password:
                found.append(password)
    return found


class Redactor:
    """Removes the configured secrets, and anything shaped like an API key, from text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True)
        patterns = [re.escape(v) for v in values]
        # A truncated echo: a word starting with the secret's first 8 characters.
        patterns += sorted({re.escape(v[:_MIN_SECRET]) + r"[^\s\"'<>,;]*" for v in values if len(v) >= 12},
                           key=len, reverse=True)
        patterns += _KEY_SHAPES
        self._pattern = re.compile("|".join(f"(?:{p})" for p in patterns))

    @classmethod
    def from_settings(cls, settings: Settings, providers: Iterable[ProviderConfig] = ()) -> Redactor:
        return cls(configured_secrets(settings, providers))

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``[REDACTED]``."""
        return self._pattern.sub(REDACTED, text)

    def scrub_error(self, exc: TollwayError) -> None:
        """Redact an upstream error in place: its message, raw body and metadata."""
        exc.message = self.redact(exc.message)
        exc.args = (exc.message,)
        if isinstance(exc, UpstreamError) and exc.raw is not None:
            exc.raw = self.redact(exc.raw)
        if exc.metadata:
            exc.metadata = _scrub_json(exc.metadata, self.redact)


def _scrub_json(value: Any, redact: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _scrub_json(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_json(v, redact) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """A log filter that redacts the formatted message (and any exception text) of a record."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__("tollway-redaction")
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redactor.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        return True


def _handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values()
                                      if isinstance(lg, logging.Logger))]
    return [h for lg in loggers for h in lg.handlers]


def install_log_redaction(redactor: Redactor) -> RedactingFilter:
    """Redact every record that the handlers configured so far emit (the root logger's,
    uvicorn's: every handler a tollway record can reach)."""
    flt = RedactingFilter(redactor)
    for handler in _handlers():
        handler.addFilter(flt)
    return flt


def remove_log_redaction(flt: RedactingFilter) -> None:
    for handler in _handlers():
        handler.removeFilter(flt)
