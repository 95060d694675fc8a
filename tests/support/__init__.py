"""Helpers shared by the test files, one module per thing they hold.

Test files import from here (and fixtures come from tests/conftest.py); no test file
imports another test file (tests/test_layout.py keeps it so).
"""
