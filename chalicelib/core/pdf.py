"""PDF documents: the few shapes our reports need (headings, paragraphs, tables).

In ``core`` because three capabilities print: the access report a person downloads
(``web/report_pdf.py``), the evidence dossier for a regulator (``proof/dossier.py``)
and the register of purposes (``consent/register.py``). Each builds its content from
the same data as its HTML view; this module only lays it out.

Why fpdf2 (measured, December 2026, Python 3.12, on the shared 2-core machine; the
numbers are in BENCHMARKS.md, section "PDF"):

- fpdf2 2.8.9 writes the document language (``/Lang``), the title, an outline
  (bookmarks), tables that break across pages with their headings repeated, and
  embeds TrueType fonts as subsets with a ToUnicode map (French accents, the euro
  sign, text that can be searched, copied and read aloud). It is pure Python.
- Its cost: ``chalice package`` grows from 12.3 MB to 25.6 MB zipped (fpdf2 itself
  is small; it requires fontTools and Pillow, and Chalice installs what a package
  requires), half of Lambda's 50 MB limit. Importing it costs about 1.6 times
  ``import app`` (fontTools is most of it), so it is imported only inside
  ``Document()``: never at ``import app`` (``tests/test_cold_start.py``), only by the
  request that asks for a PDF, once per warm container.
- reportlab (9.4 MB zipped with Pillow, 0.24 s to import) has no document
  language and no structure at all; pydyf (9 KB) is a bare object writer: text layout,
  line breaking, tables and font subsetting would all be ours to write and maintain.

Accessibility, honestly: the PDFs carry their language, a title shown by viewers in
place of the file name, an outline of every section, fonts embedded with Unicode maps
and a reading order that is the content order. fpdf2 tags section titles (a structure
tree with marked content) but not paragraphs or table cells, so they are not PDF/UA;
the HTML views remain the fully accessible form.

The fonts (DejaVu Sans, Bold and Mono, Bitstream Vera licence, ``templates/fonts/``,
cut to the scripts a name or a text may use by ``scripts/subset-fonts``: fpdf2 reads
every glyph of a font for each document) ship in the Lambda package with the
templates. Every PDF is written in 7-bit ASCII (``seven_bit``), so it needs no binary
media type in API Gateway.
"""

from __future__ import annotations

import base64
import re
import textwrap
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from chalicelib.core.settings import PACKAGE_ROOT

if TYPE_CHECKING:
    from fpdf import FPDF

FONT_DIR = PACKAGE_ROOT / "templates" / "fonts"
FONTS = {
    ("Sans", ""): "DejaVuSans.ttf",
    ("Sans", "B"): "DejaVuSans-Bold.ttf",
    ("Mono", ""): "DejaVuSansMono.ttf",
}
#: Body text size (points) and line height (mm): readable printed on A4.
BODY_PT, LINE_MM = 9.5, 4.6
GREY = (90, 90, 90)
ACCENT = (20, 60, 110)


@lru_cache(maxsize=1)
def _pdf_class() -> type[FPDF]:
    """FPDF with our footer (built once, on the first document: fpdf2 loads here)."""
    from fpdf import FPDF

    class _Paged(FPDF):
        footer_text = ""

        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("Sans", "", 7.5)
            self.set_text_color(*GREY)
            self.cell(0, 5, f"{self.footer_text} — {self.page_no()}/{{nb}}", align="C")
            self.set_text_color(0, 0, 0)

    return _Paged


class Document:
    """One A4 document: call the parts in reading order, then ``output()``."""

    def __init__(
        self,
        title: str,
        locale: str,
        author: str = "",
        footer: str = "",
        created: datetime | None = None,
    ) -> None:
        from fpdf.enums import PageMode
        from fpdf.fonts import TextStyle

        pdf = _pdf_class()(format="A4")
        pdf.footer_text = footer or title  # type: ignore[attr-defined]
        for family, style in (("Sans", ""), ("Sans", "B")):  # Mono: on first use
            pdf.add_font(family, style, str(FONT_DIR / FONTS[family, style]))
        pdf.set_lang(locale)
        pdf.set_title(title)
        pdf.set_author(author)
        pdf.set_creator("OptinProof")
        if created is not None:
            pdf.set_creation_date(created)
        pdf.page_mode = PageMode.USE_OUTLINES
        pdf.set_display_mode("fullwidth")
        pdf.viewer_preferences = _viewer_preferences()
        pdf.set_margins(18, 16, 18)
        pdf.set_auto_page_break(True, margin=18)
        pdf.set_section_title_styles(
            TextStyle("Sans", "B", 16, ACCENT, t_margin=2, b_margin=3),
            TextStyle("Sans", "B", 12.5, ACCENT, t_margin=5, b_margin=2),
            TextStyle("Sans", "B", 10.5, (0, 0, 0), t_margin=3, b_margin=1),
        )
        pdf.add_page()
        pdf.set_font("Sans", "", BODY_PT)
        self.pdf = pdf

    def heading(self, text: str, level: int = 1) -> None:
        """A title that is also an outline entry (level 0: the document's title)."""
        if level and self.pdf.will_page_break(LINE_MM * 6):
            self.pdf.add_page()  # never a heading alone at the foot of a page
        self.pdf.start_section(text, level)
        self.pdf.set_font("Sans", "", BODY_PT)

    def paragraph(self, text: str, bold: bool = False, small: bool = False) -> None:
        size = BODY_PT - 1.5 if small else BODY_PT
        self.pdf.set_font("Sans", "B" if bold else "", size)
        if small:
            self.pdf.set_text_color(*GREY)
        self.pdf.multi_cell(
            0, LINE_MM * size / BODY_PT, text, align="L", new_x="LMARGIN", new_y="NEXT"
        )
        self.pdf.set_text_color(0, 0, 0)
        self.pdf.set_font("Sans", "", BODY_PT)
        self.pdf.ln(1.4)

    def bullets(self, lines: Sequence[str]) -> None:
        for line in lines:  # a hanging indent: wrapped lines start under the words
            self.pdf.set_x(self.pdf.l_margin + 1)
            self.pdf.cell(4, LINE_MM, "•")
            self.pdf.multi_cell(0, LINE_MM, line, align="L", new_x="LMARGIN", new_y="NEXT")
        self.pdf.ln(1.4)

    def preformatted(self, text: str) -> None:
        """Mail bodies, hashes and signatures: monospaced, wrapped, nothing reflowed.

        Wrapped here, at a fixed count of characters (the font is monospaced): fpdf2's
        own line breaking measures each line again for every character added, which
        made a signed receipt the slowest part of a dossier."""
        if "mono" not in self.pdf.fonts:
            self.pdf.add_font("Mono", "", str(FONT_DIR / FONTS["Mono", ""]))
        self.pdf.set_font("Mono", "", 7.5)
        width = max(20, int(self.pdf.epw / self.pdf.get_string_width("M")))
        for line in text.splitlines() or [""]:
            pieces = textwrap.wrap(
                line, width, replace_whitespace=False, drop_whitespace=False
            ) or [""]
            for piece in pieces:
                self.pdf.cell(0, 3.6, piece.rstrip(), new_x="LMARGIN", new_y="NEXT")
        self.pdf.set_font("Sans", "", BODY_PT)
        self.pdf.ln(1.4)

    def fields(self, rows: Sequence[tuple[str, Any]], widths: tuple[int, int] = (30, 70)) -> None:
        """Name / value pairs (a person's data, an event's details)."""
        self.table([], [(name, _text(value)) for name, value in rows], widths, names=True)

    def table(
        self,
        headings: Sequence[str],
        rows: Sequence[Sequence[Any]],
        widths: Sequence[int],
        names: bool = False,
        small: bool = False,
    ) -> None:
        """Rows under headings (repeated on each page); ``names``: first column bold."""
        from fpdf.fonts import FontFace

        size = BODY_PT - (1.5 if small else 0.5)
        self.pdf.set_font("Sans", "", size)
        bold = FontFace(emphasis="BOLD")
        with self.pdf.table(
            col_widths=tuple(widths),
            first_row_as_headings=bool(headings),
            headings_style=FontFace(emphasis="BOLD", fill_color=(232, 238, 246)),
            borders_layout="HORIZONTAL_LINES",
            text_align="LEFT",
            v_align="TOP",
            line_height=LINE_MM * size / BODY_PT,
            padding=(0.8, 1.2),
            width=self.pdf.epw,
        ) as table:
            if headings:
                table.row(list(headings))
            for values in rows:
                row = table.row()
                for index, value in enumerate(values):
                    row.cell(_text(value), style=bold if names and index == 0 else None)
        self.pdf.set_font("Sans", "", BODY_PT)
        self.pdf.ln(2.5)

    def output(self) -> bytes:
        """The document, 7-bit ASCII (see ``seven_bit``)."""
        return seven_bit(bytes(self.pdf.output()))


_OBJECT = re.compile(rb"(\d+) 0 obj\n")
_LENGTH = re.compile(rb"/Length (\d+)")


def seven_bit(pdf: bytes) -> bytes:
    """The same PDF with every stream ASCII85-encoded and the cross-reference rebuilt.

    Why: API Gateway (REST, Lambda proxy) returns a binary body as binary only when
    the *first* type in the request's Accept header is one of the API's binary media
    types; a browser's first is ``text/html``, so a browser following the report's
    download link would get base64 text. Making every API answer binary (``*/*``)
    would change how every page and form travels. A PDF written in 7-bit ASCII
    (PDF 1.7, 7.2: ``ASCII85Decode`` before ``FlateDecode``) travels as text, byte
    for byte, whatever asks for it; it costs a quarter more bytes on the streams.

    Written for fpdf2's output (classic cross-reference table, numbered objects in
    order, direct ``/Length``); anything else raises ``ValueError`` rather than
    produce a broken file.
    """
    body, _, tail = pdf.partition(b"\nxref\n")
    body += b"\n"  # every object now ends with "\nendobj\n"
    trailer = tail[tail.index(b"trailer\n") : tail.index(b"\nstartxref")]
    out = bytearray(b"%PDF-" + pdf[5:8] + b"\n")
    offsets: list[int] = []
    position = body.index(b"\n1 0 obj\n") + 1
    while position < len(body):
        found = _OBJECT.match(body, position)
        if not found or int(found.group(1)) != len(offsets) + 1:
            raise ValueError(f"unexpected PDF structure at byte {position}")
        offsets.append(len(out))
        end = body.index(b"\nendobj\n", position)
        start_stream = body.find(b"\nstream\n", position, end)
        if start_stream < 0:
            out += _escaped(body[position:end]) + b"\nendobj\n"
            position = end + len(b"\nendobj\n")
            continue
        head = body[position:start_stream]
        length = _LENGTH.search(head)
        if not length or b"/DecodeParms" in head:
            raise ValueError(f"unexpected stream dictionary at byte {position}")
        data_start = start_stream + len(b"\nstream\n")
        data = body[data_start : data_start + int(length.group(1))]
        encoded = base64.a85encode(data, wrapcol=79) + b"~>"
        head = _LENGTH.sub(b"/Length %d" % len(encoded), head, count=1)
        if b"/Filter /FlateDecode" in head:
            head = head.replace(b"/Filter /FlateDecode", b"/Filter [/ASCII85Decode /FlateDecode]")
        elif b"/Filter" not in head:
            head = head.replace(b"<<", b"<<\n/Filter /ASCII85Decode", 1)
        else:
            raise ValueError(f"unexpected stream filter at byte {position}")
        out += _escaped(head) + b"\nstream\n" + encoded + b"\nendstream\nendobj\n"
        position = body.index(b"\nendobj\n", data_start + len(data)) + len(b"\nendobj\n")
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += trailer + b"\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def _escaped(part: bytes) -> bytes:
    """Bytes above 127 outside streams can only be in literal strings: octal escapes."""
    return re.sub(rb"[\x80-\xff]", lambda m: b"\\%03o" % m.group()[0], part)


def _viewer_preferences() -> Any:
    from fpdf.prefs import ViewerPreferences

    return ViewerPreferences(display_doc_title=True)  # the title, not the file name


def _text(value: Any) -> str:
    """A cell's words: nothing for None, lists joined, the rest as written."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "✓" if value else "✗"
    return str(value)
