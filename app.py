"""OptinProof's route map: one Chalice app, one blueprint per area.

Each area's routes, schedules and stream handler live in
``chalicelib/web/blueprints/<area>.py``; the rules they call live in ``chalicelib/``
(see docs/architecture.md). Lambda handlers keep their function names
(``on_table_change``, ``sync_sweep``...), so ``chalice package`` produces the same
functions, events and policies as when every route was written here.
"""

from __future__ import annotations

from chalice import Chalice

from chalicelib.web.blueprints import (
    admin,
    campaigns,
    events,
    fallback,
    hooks,
    public,
    rights,
    signup,
)

app = Chalice(app_name="optinproof")
app.register_blueprint(public.bp)
app.register_blueprint(rights.bp)
app.register_blueprint(signup.bp)
app.register_blueprint(hooks.bp)
app.register_blueprint(admin.bp)
app.register_blueprint(campaigns.bp)
app.register_blueprint(events.bp)
app.register_blueprint(fallback.bp)  # last: what no other route claims
