"""Copy-paste code that puts a signup form on a website, three ways.

- ``iframe``: our page in a frame; works with any site, fill-time check included.
- ``html``: a plain ``<form>`` posting to us; styled by the site, no script, no
  fill-time check (there is no page render of ours to time).
- ``script``: the site's own form, filled from ``form.json`` and posted as JSON
  (CORS limited to the form's ``allowed_origins``).

The same functions feed ``cli forms snippet``, the marketing guides' examples and the local
demo page, so what marketing copies is what the tests exercise.
"""

from __future__ import annotations

import html
import json
from urllib.parse import urlsplit

from chalicelib.consent.catalogue import Catalogue, Form
from chalicelib.consent.submissions import HONEYPOT
from chalicelib.core.i18n import translations


def _labels(locale: str) -> dict[str, str]:
    """The same words as our own form page, in the form's language."""
    _ = translations(locale).gettext
    return {
        "email": _("Your e-mail address"),
        "name": _("Your first name (optional)"),
        "submit": _("Send me the confirmation e-mail"),
        "retry": _("Please try again in a moment."),
        "title": _("Stay in touch"),
    }


KINDS = ("iframe", "html", "script")


#: The frame's height before its page reports one (or when the website blocks scripts):
#: the catalogue's form, by its fields and purposes, at the frame's full 42rem width
#: (measured in Chromium: header, intro, e-mail, button and footer ~44rem of the
#: website's 16 px rem; the name field 6.5; a purpose 5.2 plus 1.6 per line of its
#: text, at most ~70 characters a line; 60 counted, to err on the tall side).
_BASE_REM, _NAME_REM, _PURPOSE_REM, _TEXT_LINE_REM, _TEXT_LINE_CHARS = 44, 6.5, 5.2, 1.6, 60

#: The snippet's listener: only our own origin's message, only from its own frame.
_RESIZE = """<script>
(function () {{
  var frame = document.getElementById({frame_id}), origin = {origin};
  window.addEventListener("message", function (event) {{
    if (event.origin !== origin || !frame || event.source !== frame.contentWindow) {{ return; }}
    var data = event.data || {{}};
    if (data.type !== "optinproof:height" || typeof data.height !== "number") {{ return; }}
    frame.style.height = Math.min(Math.max(Math.ceil(data.height), 200), 6000) + "px";
  }});
}})();
</script>"""


def default_height(form: Form, catalogue: Catalogue | None, locale: str) -> str:
    """A height that fits ``form`` without its page's help (the page then reports its own)."""
    rem: float = _BASE_REM + (_NAME_REM if form.ask_name else 0)
    for purpose_id in form.purposes:
        rem += _PURPOSE_REM
        if catalogue is not None:
            text = catalogue.get(purpose_id).text(locale).text
            rem += _TEXT_LINE_REM * (len(text) // _TEXT_LINE_CHARS + text.count("\n\n") + 1)
    return f"{round(rem)}rem"


def iframe(
    base_url: str,
    form: Form,
    locale: str | None = None,
    height: str | None = None,
    catalogue: Catalogue | None = None,
) -> str:
    """An ``<iframe>`` of ``GET /signup/{form}``, and the few lines that let the framed
    page set the frame's height (it posts it; this listens to our origin only)."""
    query = f"?lang={locale}" if locale else ""
    src = html.escape(f"{base_url}/signup/{form.id}{query}")
    title = html.escape(form.heading.get(locale or "") or _labels(locale or "en")["title"])
    frame_id = f"optinproof-{form.id}"
    height = height or default_height(form, catalogue, locale or form.locale or "en")
    parts = urlsplit(base_url)
    return (
        f'<iframe id="{html.escape(frame_id)}" src="{src}" title="{title}" loading="lazy"\n'
        f'        style="width:100%;max-width:42rem;height:{height};border:0"></iframe>\n'
        + _RESIZE.format(
            frame_id=json.dumps(frame_id), origin=json.dumps(f"{parts.scheme}://{parts.netloc}")
        )
    )


def plain_html(base_url: str, form: Form, catalogue: Catalogue, locale: str) -> str:
    """A plain HTML form posting to ``POST /signup/{form}`` (form-encoded)."""
    e, words = html.escape, _labels(locale)
    lines = [
        f'<form method="post" action="{e(base_url)}/signup/{e(form.id)}">',
        f'  <input type="hidden" name="lang" value="{e(locale)}">',
        '  <input type="hidden" name="embed" value="html">',
        f'  <p><label>{e(words["email"])} <input type="email" name="email" required '
        'autocomplete="email"></label></p>',
    ]
    if form.ask_name:
        lines.append(
            f'  <p><label>{e(words["name"])} <input type="text" name="name" '
            'autocomplete="given-name"></label></p>'
        )
    lines.append(
        f'  <p style="position:absolute;left:-9999px" aria-hidden="true"><input '
        f'type="text" name="{HONEYPOT}" tabindex="-1" autocomplete="off"></p>'
    )
    for purpose_id in form.purposes:
        text = catalogue.get(purpose_id).text(locale)
        opt_out = catalogue.get(purpose_id).opt_out.get(locale)  # not on consent: offered here
        words_shown = text.text + (f"\n{opt_out.text}" if opt_out else "")
        lines += [
            f'  <p><label><input type="checkbox" name="purpose.{e(purpose_id)}" value="yes"> '
            f"{e(text.title)}</label><br>",
            f"     <small>{e(' '.join(words_shown.split()))}</small>",
            f'     <input type="hidden" name="text.{e(purpose_id)}" value="{text.sha256}"></p>',
        ]
    lines += [f'  <button type="submit">{e(words["submit"])}</button>', "</form>"]
    return "\n".join(lines)


_SCRIPT = """<form id="optinproof-{form_id}">
  <p><label>{email_label} <input type="email" name="email" required autocomplete="email"></label></p>
  {name_field}<div data-purposes></div>
  <button type="submit">{submit_label}</button>
  <p data-message role="status"></p>
</form>
<script>
(function () {{
  var base = {base}, formId = {form_id_json}, lang = {lang};
  var form = document.getElementById("optinproof-" + formId), meta = null;
  var box = form.querySelector("[data-purposes]"), message = form.querySelector("[data-message]");
  fetch(base + "/signup/" + formId + "/form.json?lang=" + lang)
    .then(function (r) {{ return r.json(); }})
    .then(function (m) {{
      meta = m;
      m.purposes.forEach(function (p) {{
        var row = document.createElement("p"), label = document.createElement("label");
        var box_ = document.createElement("input"), text = document.createElement("small");
        box_.type = "checkbox"; box_.name = "purpose"; box_.value = p.id;
        label.appendChild(box_); label.appendChild(document.createTextNode(" " + p.title));
        text.textContent = p.opt_out ? p.text + " " + p.opt_out : p.text;
        row.appendChild(label); row.appendChild(document.createElement("br")); row.appendChild(text);
        box.appendChild(row);
      }});
    }});
  form.addEventListener("submit", function (event) {{
    event.preventDefault();
    if (!meta) {{ return; }}
    var purposes = [], texts = {{}};
    form.querySelectorAll("input[name=purpose]:checked").forEach(function (i) {{ purposes.push(i.value); }});
    meta.purposes.forEach(function (p) {{ texts[p.id] = p.sha256; }});
    var name = form.querySelector("input[name=name]");
    fetch(base + "/signup/" + formId, {{
      method: "POST", headers: {{"Content-Type": "application/json"}},
      body: JSON.stringify({{email: form.email.value, name: name ? name.value : null,
        purposes: purposes, texts: texts, started: meta.started, locale: meta.locale,
        page_url: location.href}})
    }}).then(function (r) {{ return r.json(); }})
      .then(function (answer) {{ message.textContent = answer.message; }})
      .catch(function () {{ message.textContent = {retry}; }});
  }});
}})();
</script>"""


def script(base_url: str, form: Form, locale: str) -> str:
    """The site's own form, built from ``form.json`` and posted as JSON."""
    words = _labels(locale)
    name_field = (
        (
            f'<p><label>{html.escape(words["name"])} <input type="text" name="name" '
            'autocomplete="given-name"></label></p>\n  '
        )
        if form.ask_name
        else ""
    )
    return _SCRIPT.format(
        form_id=html.escape(form.id),
        form_id_json=json.dumps(form.id),
        base=json.dumps(base_url),
        lang=json.dumps(locale),
        name_field=name_field,
        email_label=html.escape(words["email"]),
        submit_label=html.escape(words["submit"]),
        retry=json.dumps(words["retry"], ensure_ascii=False),
    )


def snippet(
    kind: str, base_url: str, form: Form, catalogue: Catalogue, locale: str | None = None
) -> str:
    """The embed code of ``kind`` for ``form`` served from ``base_url``."""
    locale = locale or form.locale or catalogue.default_locale
    if kind == "iframe":
        return iframe(base_url, form, locale, catalogue=catalogue)
    if kind == "html":
        return plain_html(base_url, form, catalogue, locale)
    if kind == "script":
        return script(base_url, form, locale)
    raise ValueError(f"unknown snippet kind {kind!r}; choose one of {', '.join(KINDS)}")
