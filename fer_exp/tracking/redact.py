"""Keep secrets out of MLflow: credentials in URLs and values read from secret env variables.

>>> redact_text("http://alice:s3cret@mlflow.lab:5000/?token=abc&x=1")
'http://***@mlflow.lab:5000/?token=***&x=1'
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

MASK = "***"
# Hydra escapes ':' as '\:' in sweep overrides, hence the optional backslashes.
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*\\?://)[^/@\s]+@")
_SECRET_WORDS = r"(?:token|secret|password|passwd|pwd|api[_-]?key|access[_-]?key|credential|auth)"
_QUERY_SECRET = re.compile(rf"(?i)(?P<key>[?&;][^=&\s]*{_SECRET_WORDS}[^=&\s]*=)[^&\s]*")
_SECRET_ENV = re.compile(rf"(?i)\$\{{oc\.env:\s*(?P<name>[^,}}]*{_SECRET_WORDS}[^,}}]*)")


def redact_text(text: str) -> str:
    """Strip ``user:password@`` from URLs and secret-looking query parameters."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}{MASK}", text)


def secret_keys(raw: DictConfig) -> set[str]:
    """Dotted keys to hide: named like a secret, or reading a secret-named env variable."""
    found: set[str] = set()

    def walk(node: DictConfig | ListConfig, prefix: str) -> None:
        keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
        for key in keys:
            name, child = f"{prefix}{key}", node._get_node(key)
            if isinstance(child, (DictConfig, ListConfig)):
                walk(child, f"{name}.")
                continue
            value = child._value() if child is not None else None
            if re.fullmatch(rf"(?i).*{_SECRET_WORDS}.*", str(key)) or (
                isinstance(value, str) and _SECRET_ENV.search(value)
            ):
                found.add(name)

    walk(raw, "")
    return found


def redact_tree(tree: Mapping[str, Any], masked: set[str] = frozenset(), prefix: str = "") -> dict[str, Any]:
    """A copy of a nested config with ``masked`` keys hidden and URL credentials stripped."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if name in masked:
            out[key] = MASK
        elif isinstance(value, Mapping):
            out[key] = redact_tree(value, masked, f"{name}.")
        elif isinstance(value, str):
            out[key] = redact_text(value)
        elif isinstance(value, list):
            out[key] = [redact_text(v) if isinstance(v, str) else v for v in value]
        else:
            out[key] = value
    return out


def to_yaml(tree: Mapping[str, Any]) -> str:
    """A config tree as YAML, as runs log it (``config/config.yaml``). It hides nothing
    itself: pass it :func:`redact_tree`'s output.

    >>> print(to_yaml({"model": {"name": "cnn"}, "epochs": 5}), end="")
    model:
      name: cnn
    epochs: 5
    """
    return OmegaConf.to_yaml(OmegaConf.create(dict(tree)))


def redact_log_records() -> None:
    """Redact every log record this process creates, whoever logs it (Hydra's launcher line
    with the overrides, urllib3's retry warnings with the URL, MLflow, fer_exp): a record
    factory sees each record before any handler, file or console does. Idempotent."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "redacts", False):
        return

    def redacting_factory(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging to report
            return record
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return record

    redacting_factory.redacts = True
    logging.setLogRecordFactory(redacting_factory)


class _RedactingStream:
    """A text stream that redacts what is written to it, and is the wrapped stream otherwise."""

    redacts = True

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        """Write ``text`` with its credentials masked (see :func:`redact_text`)."""
        self._stream.write(redact_text(text))
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def redact_streams() -> None:
    """Redact everything this process prints through ``sys.stdout`` and ``sys.stderr`` — also
    what others print there: Hydra's "Error executing job with overrides: [...]" line, an
    exception's message. Idempotent."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not getattr(stream, "redacts", False):
            setattr(sys, name, _RedactingStream(stream))
