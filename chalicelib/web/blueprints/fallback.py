"""Every path no other route claims: our own "page not found", never API Gateway's.

Without it API Gateway answers an unknown path with a bare ``403 {"message": "Missing
Authentication Token"}``: English only, no privacy headers, and a hint that something
is there. ``/{proxy+}`` is API Gateway's greedy path: it only catches what no more
specific resource matches, so ``/c/{token}``, ``/signup/{form_id}`` and the rest keep
their routes. (``chalice local`` matches it for one path segment only; deployed, it
matches any depth: tests/test_package.py invokes it that way.)
"""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.core.services import get_catalogue
from chalicelib.web import http

# Cold start: the page code (views) is imported by the first unknown path, not at import.

bp = Blueprint(__name__)

#: Every method a browser or a script might try on a path that does not exist.
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
#: Whatever a stray POST carries, it gets the 404, not Chalice's 415.
CONTENT_TYPES = [*http.FORM_TYPES, "application/octet-stream", "application/xml", "text/xml"]


@bp.route("/", methods=METHODS, content_types=CONTENT_TYPES)
def root() -> Response:
    """Nothing lives at the root: people arrive through links and forms."""
    return not_found()


@bp.route("/{proxy+}", methods=METHODS, content_types=CONTENT_TYPES)
def not_found() -> Response:
    """The branded 404 page, in the person's language; JSON for a JSON client."""
    from chalicelib.web import views

    request = bp.current_request
    if http.wants_json(request):
        return http.json_answer(
            request,
            {"error": "not_found", "message": "There is nothing at this address."},
            404,
        )
    return http.respond(request, views.not_found_page(get_catalogue(), http.locale(request)))
