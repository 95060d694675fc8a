"""The operator CLI: ``python -m chalicelib.cli`` (or ``optinproof``)."""
from chalicelib.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
