"""The operator CLI: ``python -m chalicelib.cli`` (or ``optinproof``)."""

from chalicelib.cli.main import cli, main, main_entry

__all__ = ["cli", "main", "main_entry"]
