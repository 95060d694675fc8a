"""The app's areas as Chalice blueprints, registered by ``app.py``.

Each module creates ``bp = Blueprint(__name__)``: Lambda imports event handlers by
this module path (``chalicelib.web.blueprints.events.on_table_change``), so a module
must stay importable under its own name.
"""
