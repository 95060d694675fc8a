"""Local stand-ins for the deployed parts, shared by ``make run`` and the tests."""
