"""French by default, English on request: gettext catalogues read from the shipped .po files.

The .po files are the catalogues; they are compiled in memory at startup (Babel), so there is no
build step to forget and a translation edited in the .po is what the next start serves.
"""

from __future__ import annotations

import gettext
import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES = Path(__file__).parent / "locales"
DOMAIN = "messages"
LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"


def load(locales: Path = LOCALES) -> dict[str, gettext.GNUTranslations]:
    """One translation per language, compiled from `<lang>/LC_MESSAGES/messages.po`."""
    out: dict[str, gettext.GNUTranslations] = {}
    for lang in LANGUAGES:
        po = locales / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=lang)
        buf = io.BytesIO()
        write_mo(buf, catalog)
        buf.seek(0)
        out[lang] = gettext.GNUTranslations(buf)
    return out


def pick_language(*, query: str | None, cookie: str | None) -> str:
    """The language asked in the URL, else the one chosen before, else French.

    The browser's Accept-Language is not consulted: the town's console speaks the town's
    language until its user picks another (a shared workstation's browser says little).

    >>> pick_language(query="en", cookie="fr")
    'en'
    >>> pick_language(query="de", cookie="en")
    'en'
    >>> pick_language(query=None, cookie=None)
    'fr'
    """
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return candidate
    return DEFAULT_LANGUAGE


def messages(translation: gettext.GNUTranslations) -> dict[str, str]:
    """Every msgid with its translation: what the pages' scripts look their strings up in."""
    # _catalog is GNUTranslations' parsed .mo; there is no public accessor for the whole table.
    catalog: dict[object, str] = translation._catalog  # type: ignore[attr-defined]
    return {k: v for k, v in catalog.items() if isinstance(k, str) and k and v}


HERE = Path(__file__).parent
# Where translatable strings are: `_("...")` in templates, `t("...")` in the pages' scripts.
METHOD_MAP = [("templates/**.html", "jinja2.ext:babel_extract"), ("static/*.js", "javascript")]
KEYWORDS = {"_": None, "gettext": None, "t": None}


def extract(root: Path = HERE) -> list[str]:
    """Every msgid the templates and scripts use, in order of first appearance."""
    from babel.messages.extract import extract_from_dir

    seen: dict[str, None] = {}
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(root),
        METHOD_MAP,
        keywords=KEYWORDS,
        options_map={"static/*.js": {"parse_template_string": "true"}},
    ):
        if isinstance(message, str) and message:
            seen.setdefault(message, None)
    return list(seen)
