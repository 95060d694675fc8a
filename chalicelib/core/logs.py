"""Structured logs: one JSON object per line with an ``event`` field.

No personal data here beyond the subject key: addresses, IPs and user agents never
reach a log line, because logs are not erasable.
"""
from __future__ import annotations

import json
import sys
from typing import Any

from chalicelib.core.clock import now_iso


def log(event: str, level: str = "info", **fields: Any) -> None:
    """Write one JSON line to stdout (CloudWatch keeps stdout of a Lambda)."""
    record = {"at": now_iso(), "level": level, "event": event, **fields}
    sys.stdout.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()
