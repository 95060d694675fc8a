"""Structured logs: one JSON object per line with an ``event`` field.

No personal data here beyond the subject key: addresses, IPs and user agents never
reach a log line, because logs are not erasable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from chalicelib.core.clock import now_iso

#: Where log lines go instead of stdout (the CLI: stderr), or None for stdout.
_target: TextIO | None = None


@contextmanager
def logs_to(stream: TextIO) -> Iterator[None]:
    """Send log lines to ``stream`` for a while: the CLI keeps stdout for what scripts read."""
    global _target
    before, _target = _target, stream
    try:
        yield
    finally:
        _target = before


def log(event: str, level: str = "info", **fields: Any) -> None:
    """Write one JSON line to stdout (CloudWatch keeps stdout of a Lambda), or to the
    stream set by :func:`logs_to` (the operator CLI sends them to stderr)."""
    record = {"at": now_iso(), "level": level, "event": event, **fields}
    out = _target or sys.stdout
    out.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
    out.flush()
