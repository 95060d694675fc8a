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
- The server has a clock of its own (``timezone_name``, default UTC; the tests and
  ``make run`` use Europe/Paris): timestamps it writes (``created``, ``edited``, ...) are
  its wall time with milliseconds and no zone, ``YYYY-MM-DDTHH:MM:SS.mmm``, strictly
  increasing; custom Date/DateTime values are stored like Act! keeps them, server-local
  without zone, ``YYYY-MM-DDTHH:MM:SS``. ``offsets=True`` answers both with the offset
  (``...+01:00``), as one Act! cloud host was seen to.
- As strict as Act!, no stricter: ``/authorize`` takes GET only; OData options work
  only on routes whose Swagger summary says they take "an (optional) OData query" (any
  other route ignores them, as Act! does); ``$filter`` knows only the operators Act!
  documents and refuses a date-time literal without a zone; ``$expand`` works.
  ``sim.ignored_options`` makes a route ignore options (an install that does not page).
- Bodies: JSON, or form-encoded where the operation's Swagger ``consumes`` says so
  (``a.b=``/``a[b]=`` nest, ``a[0][id]=`` lists, text typed by the definition); XML,
  also listed, gets 415 (its DataContract shape is not published); answers are JSON.
"""
from devstack.act_simulator.server import ActSimulator, Faults

__all__ = ["ActSimulator", "Faults"]
