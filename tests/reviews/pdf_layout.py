"""Where a PDF's text lands: every string shown, with its page and its box in page space, read from the content
streams (the operators reportlab writes: q/Q, cm, BT/ET, Tm, Td, TL, T*, Tf, Tj). An embedded TrueType subset
is read as a PDF reader reads it: each code's character from the font's /ToUnicode map, its width from
/Widths; the standard fonts (Helvetica) by their names, in WinAnsi."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from pyhanko.pdf_utils.reader import PdfFileReader
from reportlab.pdfbase.pdfmetrics import stringWidth

_TOKEN = re.compile(rb"\((?:\\.|[^\\)])*\)|/[^\s/()<>\[\]]+|[-+]?[0-9]*\.?[0-9]+|[A-Za-z*']+|\S", re.DOTALL)
_FONTS = {"/Helvetica": "Helvetica", "/Helvetica-Bold": "Helvetica-Bold", "/ZapfDingbats": "ZapfDingbats"}


@dataclass(frozen=True)
class Shown:
    page: int
    text: str
    left: float
    right: float
    page_width: float


def _unescape(raw: bytes) -> bytes:
    return re.sub(rb"\\([0-7]{1,3}|.)", lambda m: bytes([int(m.group(1), 8)]) if m.group(1)[:1].isdigit()
                  else {b"n": b"\n", b"r": b"\r", b"t": b"\t"}.get(m.group(1), m.group(1)), raw[1:-1])


@dataclass(frozen=True)
class _Font:
    standard: str | None  # a standard font's name; None for an embedded one read by the maps below
    chars: dict[int, str]
    widths: dict[int, float]

    def text(self, codes: bytes) -> str:
        if self.standard:
            return codes.decode("cp1252", errors="replace")
        return "".join(self.chars.get(c, "\ufffd") for c in codes)

    def width(self, codes: bytes, size: float) -> float:
        if self.standard:
            return stringWidth(self.text(codes), self.standard, size)
        return sum(self.widths.get(c, 0.0) for c in codes) * size / 1000


def _font(obj) -> _Font:  # type: ignore[no-untyped-def]
    if "/ToUnicode" not in obj:
        return _Font(_FONTS.get(str(obj["/BaseFont"]), "Helvetica"), {}, {})
    cmap = obj["/ToUnicode"].get_object().data
    chars = {}
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", cmap, re.DOTALL):
        for code, uni in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            chars[int(code, 16)] = bytes.fromhex(uni.decode()).decode("utf-16-be")
    first = int(obj["/FirstChar"])
    widths = {first + i: float(w) for i, w in enumerate(obj["/Widths"])}
    return _Font(None, chars, widths)


def _mul(a: list[float], b: list[float]) -> list[float]:
    """a then b (PDF row-vector matrices [a b c d e f])."""
    return [a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3], a[2] * b[0] + a[3] * b[2],
            a[2] * b[1] + a[3] * b[3], a[4] * b[0] + a[5] * b[2] + b[4], a[4] * b[1] + a[5] * b[3] + b[5]]


def shown_text(data: bytes) -> list[Shown]:
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    out: list[Shown] = []
    for number, kid in enumerate(reader.root["/Pages"]["/Kids"], start=1):
        page = kid.get_object()
        width = float(page["/MediaBox"][2])
        fonts = {str(k): _font(v.get_object()) for k, v in page["/Resources"]["/Font"].items()}
        contents = page["/Contents"]
        stream = b"\n".join(s.get_object().data for s in (contents if isinstance(contents, list) else [contents]))
        ctm, stack, operands = [1.0, 0, 0, 1.0, 0, 0], [], []
        tm = line = [1.0, 0, 0, 1.0, 0, 0]
        helvetica = _Font("Helvetica", {}, {})
        font, size, leading = helvetica, 10.0, 0.0
        for token in _TOKEN.findall(stream):
            op = token.decode("latin-1")
            if token[:1] == b"(" or token[:1] == b"/" or re.fullmatch(rb"[-+]?[0-9]*\.?[0-9]+", token):
                operands.append(token)
                continue
            args = operands
            operands = []
            if op == "q":
                stack.append(ctm)
            elif op == "Q":
                ctm = stack.pop()
            elif op == "cm":
                ctm = _mul([float(x) for x in args[-6:]], ctm)
            elif op == "BT":
                tm = line = [1.0, 0, 0, 1.0, 0, 0]
            elif op == "Tm":
                tm = line = [float(x) for x in args[-6:]]
            elif op == "Td":
                tm = line = _mul([1.0, 0, 0, 1.0, float(args[-2]), float(args[-1])], line)
            elif op == "T*":
                tm = line = _mul([1.0, 0, 0, 1.0, 0, -leading], line)
            elif op == "TL":
                leading = float(args[-1])
            elif op == "Tf":
                font, size = fonts.get(args[-2].decode(), helvetica), float(args[-1])
            elif op == "Tj":
                codes = _unescape(args[-1])
                text = font.text(codes)
                advance = font.width(codes, size)
                start = _mul(tm, ctm)[4]
                out.append(Shown(number, text, start, start + advance * ctm[0], width))
                tm = _mul([1.0, 0, 0, 1.0, advance, 0], tm)
    return out
