"""OptinProof domain: everything below app.py, with no Chalice imports."""
