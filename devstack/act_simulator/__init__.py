"""A local Act! Web API (``act.web.api``) for ``make run`` and the tests.

``ActSimulator`` serves, on 127.0.0.1, what Act!'s own Swagger and
``../shared/act-web-api/NOTES.md`` describe (its §8 is the checklist): ``/authorize``
minting HS256 JWTs; contacts with OData, PUT/PATCH and custom fields checked against
metadata; contact field metadata; histories; groups; webhooks with a hand-driven
delivery pass; and switchable faults (``Faults``). Run it alone with
``python -m devstack.act_simulator --port 8002``.

Representation choices (where Act! publishes nothing, marked [I] in the code):

- ``sim.contacts``: id -> Contact JSON exactly as served: every Swagger property
  present (booleans false, others null), ``customFields`` holding every non-built-in
  field keyed by lower-cased ``columnName`` (null when empty).
- ``sim.groups``: id -> Group JSON as served (``contacts`` is the member count, as the
  Swagger says) plus a simulator-only ``memberIds`` list of contact ids, which is
  never served.
- ``sim.webhooks``: id -> RegistrationViewModel as served. ``callbackToken`` and
  ``certHashString`` are not part of that model, so they are kept privately.
  ``suspended`` is a date-time (when it was suspended) or null, as the Swagger types it.
- ``sim.requests``: ``(method, path below the base URL with its query, percent-decoded,
  status)`` for every ``/act.web.api`` call, ``/authorize`` included.
- Timestamps the server writes are UTC ``YYYY-MM-DDTHH:MM:SS.mmmZ``, strictly
  increasing; custom Date/DateTime values are stored like Act! keeps them, server-local
  (here UTC) without zone, ``YYYY-MM-DDTHH:MM:SS``.
- JSON only: other request media types get 415; answers are always JSON.
"""
from devstack.act_simulator.server import ActSimulator, Faults

__all__ = ["ActSimulator", "Faults"]
