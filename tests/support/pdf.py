"""Reading the PDFs we make as a reader would: their text, their metadata, their pages."""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pypdf
import pypdfium2


def reader(data: bytes) -> pypdf.PdfReader:
    assert data.startswith(b"%PDF-"), data[:40]
    return pypdf.PdfReader(io.BytesIO(data))


def text(data: bytes) -> str:
    """Every page's text, lines joined by spaces (table cells wrap where the layout says)."""
    pages = reader(data).pages
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in pages))


def squeezed(data: bytes) -> str:
    """The text without any white space: a hash wrapped over two lines is found whole."""
    return re.sub(r"\s+", "", text(data))


def outline(data: bytes) -> list[str]:
    """The bookmarks' titles, depth first."""
    def walk(items: list[Any]) -> list[str]:
        found: list[str] = []
        for item in items:
            found += walk(item) if isinstance(item, list) else [item.title]
        return found
    return walk(reader(data).outline)


def fonts(data: bytes) -> list[tuple[str, bool]]:
    """(font name, embedded) for every font the pages use."""
    found = {}
    for page in reader(data).pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            font = font.get_object()
            descendants = font.get("/DescendantFonts")
            described = (descendants[0].get_object() if descendants else font).get(
                "/FontDescriptor")
            embedded = bool(described) and any(
                key in described.get_object() for key in ("/FontFile", "/FontFile2", "/FontFile3"))
            found[str(font["/BaseFont"])] = embedded
    return sorted(found.items())


def pngs(data: bytes, folder: Path, stem: str, scale: float = 1.2) -> list[Path]:
    """Each page rendered by PDFium to ``folder/stem-N.png``."""
    document = pypdfium2.PdfDocument(data)
    paths = []
    for number in range(len(document)):
        path = folder / f"{stem}-{number + 1}.png"
        document[number].render(scale=scale).to_pil().save(path)
        paths.append(path)
    document.close()
    return paths


def inked(path: Path) -> float:
    """The share of the page's pixels that are not white (0: a blank page)."""
    from PIL import Image

    with Image.open(path) as image:
        grey = image.convert("L")
        histogram = grey.histogram()
    return 1 - sum(histogram[250:]) / (grey.width * grey.height)
