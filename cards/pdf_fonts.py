"""The fonts of the certification PDF: TrueType fonts embedded as subsets, chosen character by character.

The chain, first match wins for each character: the files named by ``ACCESSBOT_PDF_FONT`` (in order), the
pinned Noto Sans (Latin, Greek, Cyrillic, Vietnamese) and Noto Sans Arabic packages, then DejaVu Sans and a few
CJK TrueType fonts where the system has them. A character none of them draws is still written into the PDF's
text layer (a copy or a text extraction gives it back exactly), drawn as the font's empty-glyph box and followed
by its code point, ``[U+4E2D]``, in print; ``missing`` names it so the command can warn. Helvetica is used only
when no TrueType font can be found at all, and then a character outside its Western European set is refused
(``FontError``) rather than drawn as a box."""

from __future__ import annotations

import copy
import os
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont

PACKAGED = (("fontpkg_noto_sans", "files/NotoSans[wdth,wght].ttf"),
            ("fontpkg_noto_sans_arabic", "files/NotoSansArabic[wdth,wght].ttf"))
SYSTEM_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "/System/Library/Fonts",
               "C:/Windows/Fonts")
SYSTEM_FILES = ("DejaVuSans.ttf", "DroidSansFallbackFull.ttf", "DroidSansFallback.ttf", "NotoSansCJK-Regular.ttf")


class FontError(Exception):
    """A font file cannot be used, or text cannot be written with the fonts there are; the message says which."""


class _NoGlyph(dict):  # type: ignore[type-arg]
    """A character map in which every character has the empty glyph (0): reportlab then gives the character a
    code of its own and a ToUnicode entry, so it stays in the text layer though no font can draw it."""

    def __contains__(self, code: object) -> bool:
        return True

    def __getitem__(self, code: int) -> int:
        return 0

    def get(self, code: int, default: object = None) -> int:  # type: ignore[override]
        return 0


def _packaged() -> list[Path]:
    found = []
    for package, name in PACKAGED:
        try:
            path = Path(str(resources.files(package).joinpath(name)))
        except ModuleNotFoundError:
            continue
        if path.is_file():
            found.append(path)
    return found


def _system() -> list[Path]:
    found: dict[str, Path] = {}
    for folder in SYSTEM_DIRS:
        if not os.path.isdir(folder):
            continue
        for root, _dirs, files in os.walk(folder):
            for name in files:
                if name in SYSTEM_FILES and name not in found:
                    found[name] = Path(root) / name
    return [found[n] for n in SYSTEM_FILES if n in found]


def configured(env_value: str) -> list[Path]:
    """The files named by ``ACCESSBOT_PDF_FONT`` (separated by ``os.pathsep``); a name that is not a file is
    refused."""
    paths = [Path(p).expanduser() for p in env_value.split(os.pathsep) if p.strip()]
    for p in paths:
        if not p.is_file():
            raise FontError(f"ACCESSBOT_PDF_FONT: {p} is not a font file")
    return paths


@dataclass
class Fonts:
    """The registered fonts of one rendering, and the characters none of them could draw."""

    names: list[str]
    faces: list[TTFont]
    nothing: str | None  # the font whose every glyph is the empty one; None when Helvetica is all there is
    missing: set[str] = field(default_factory=set)

    @property
    def primary(self) -> str:
        return self.names[0] if self.names else "Helvetica"

    def _font_of(self, ch: str, previous: int | None) -> int | None:
        code = ord(ch)
        if previous is not None and unicodedata.combining(ch) and code in self.faces[previous].face.charToGlyph:
            return previous  # a combining mark stays with its base letter's font when that font has it
        for i, font in enumerate(self.faces):
            if code in font.face.charToGlyph:
                return i
        return None

    def markup(self, text: str) -> str:
        """``text`` as Paragraph markup: escaped, each run in the first font that has its characters."""
        if not self.faces:
            try:
                text.encode("cp1252")
            except UnicodeEncodeError:
                bad = sorted({c for c in text if not _cp1252(c)})
                raise FontError("no TrueType font was found and Helvetica cannot write "
                                + ", ".join(f"U+{ord(c):04X}" for c in bad)) from None
            return escape(text)
        out: list[str] = []
        runs: list[tuple[int | None, str]] = []
        previous: int | None = None
        for ch in text:
            if ch in "\n\t" or ord(ch) < 32:
                index = previous if previous is not None else 0
            elif ch == " ":
                index = previous if previous is not None else 0
            else:
                index = self._font_of(ch, previous)
            if runs and runs[-1][0] == index:
                runs[-1] = (index, runs[-1][1] + ch)
            else:
                runs.append((index, ch))
            previous = index
        for index, run in runs:
            if index is None:
                self.missing.update(run)
                codes = " ".join(f"U+{ord(c):04X}" for c in run)
                out.append(f'<font name="{self.nothing}">{escape(run)}</font>[{codes}]')
            elif index == 0:
                out.append(escape(run))
            else:
                out.append(f'<font name="{self.names[index]}">{escape(run)}</font>')
        return "".join(out)


def _cp1252(ch: str) -> bool:
    try:
        ch.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


_registered: dict[Path, str] = {}
_blank: set[str] = set()


def _register(path: Path) -> str:
    if path in _registered:
        return _registered[path]
    name = f"accessbot-{len(_registered) + 1}-{path.stem}"
    try:
        pdfmetrics.registerFont(TTFont(name, str(path)))
    except (TTFError, OSError, ValueError) as exc:
        raise FontError(f"{path} cannot be embedded ({exc})") from None
    _registered[path] = name
    return name


def load(configured_files: Sequence[Path] = (), *, search: Iterable[Path] | None = None) -> Fonts:
    """The chain for one rendering: ``configured_files`` (refused when one cannot be embedded), then the
    packaged and system fonts (skipped when one cannot be embedded: a PostScript-outline OpenType, say)."""
    names: list[str] = []
    for path in configured_files:
        names.append(_register(path))
    for path in (search if search is not None else [*_packaged(), *_system()]):
        try:
            name = _register(path)
        except FontError:
            continue
        if name not in names:
            names.append(name)
    if not names:
        return Fonts([], [], None)
    faces = [pdfmetrics.getFont(n) for n in names]
    nothing = f"{names[0]}-noglyph"
    if nothing not in _blank:
        blank = TTFont(nothing, str(next(p for p, n in _registered.items() if n == names[0])))
        blank.face = copy.copy(blank.face)  # reportlab shares one face among the fonts of a file, and one
        blank.face.name = blank.face.name + (b"-NoGlyph" if isinstance(blank.face.name, bytes) else "-NoGlyph")
        blank.face.charToGlyph = _NoGlyph()  # font object among those of a face name: both are its own
        pdfmetrics.registerFont(blank)
        _blank.add(nothing)
    return Fonts(names, faces, nothing)  # type: ignore[arg-type]
