"""A reader's library from a file: BibTeX, a Zotero CSV export, or a plain list of arXiv ids or URLs.

`read_library` returns the entries it could read and, for each one it could not, a problem naming the entry
and what is wrong: a broken entry is skipped and reported, never fatal for the rest. An entry is a
candidate paper: its arXiv id when the file gives one (eprint, URL, DOI 10.48550/arXiv.*, "arXiv:" in
Zotero's Extra), else its title and abstract as written. Imports only feedsvc.models and feedsvc.identity.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import bibtexparser

from feedsvc.identity import ItemKey, arxiv_id, canonical_key
from feedsvc.models import ConfigError

MAX_BYTES = 20_000_000


@dataclass(frozen=True)
class LibraryEntry:
    label: str  # the BibTeX key, CSV row number or line number, for messages
    title: str = ""
    arxiv: str | None = None
    abstract: str = ""
    authors: tuple[str, ...] = ()
    year: int | None = None
    url: str = ""
    doi: str = ""
    tags: tuple[str, ...] = ()  # the file's own tags, lower case (BibTeX keywords, Zotero tags)

    @property
    def key(self) -> ItemKey:
        """The item key this entry stands for."""
        if self.arxiv:
            return ItemKey.arxiv(self.arxiv)
        if self.doi:
            return ItemKey.url("https://doi.org/" + self.doi)
        if self.url:
            return canonical_key(self.url)
        return ItemKey.titled(self.title)


@dataclass
class LibraryRead:
    entries: list[LibraryEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _find_arxiv(*texts: str) -> str | None:
    for t in texts:
        if t:
            found = arxiv_id(t)
            if found:
                return found[0]
    return None


def _clean(text: str) -> str:
    return " ".join(text.replace("{", "").replace("}", "").split())


def _year(text: str) -> int | None:
    m = re.search(r"\b(19|20)\d\d\b", text or "")
    return int(m.group(0)) if m else None


def _tags(*texts: str) -> tuple[str, ...]:
    """Tags as a file writes them ("canonical, rl; theory"): lower case, each once, in order."""
    found = (t.strip().lower() for text in texts for t in re.split(r"[,;]", _clean(text)))
    return tuple(dict.fromkeys(t for t in found if t))[:20]


def read_bibtex(text: str) -> LibraryRead:
    out = LibraryRead()
    library = bibtexparser.parse_string(text)
    for block in library.failed_blocks:
        exc = getattr(block, "error", None)
        error = str(getattr(exc, "abort_reason", "") or exc or "unreadable").strip().splitlines() or [
            "unreadable"
        ]
        out.problems.append(f"BibTeX entry at line {block.start_line + 1} skipped: {error[0]}")
    for e in library.entries:
        f = {k.lower(): str(v.value) for k, v in e.fields_dict.items()}
        eprint = f.get("eprint", "") if f.get("archiveprefix", "arxiv").lower() == "arxiv" else ""
        found = _find_arxiv(
            f"arXiv:{eprint}" if eprint else "",
            f.get("url", ""),
            f.get("doi", ""),
            f.get("journal", ""),
            f.get("note", ""),
        )
        title = _clean(f.get("title", ""))
        if not title and not found:
            out.problems.append(f"BibTeX entry '{e.key}' skipped: no title and no arXiv id")
            continue
        authors = tuple(_clean(a) for a in re.split(r"\s+and\s+", f.get("author", "")) if a.strip())
        out.entries.append(
            LibraryEntry(
                label=e.key,
                title=title,
                arxiv=found,
                abstract=_clean(f.get("abstract", "")),
                authors=authors,
                year=_year(f.get("year", "")),
                url=f.get("url", ""),
                doi=f.get("doi", ""),
                tags=_tags(f.get("keywords", ""), f.get("mendeley-tags", "")),
            )
        )
    return out


def read_zotero_csv(text: str) -> LibraryRead:
    """Zotero's CSV export: columns Title, Author, Publication Year, Url, DOI, Abstract Note, Extra, Manual
    Tags."""
    out = LibraryRead()
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "Title" not in reader.fieldnames:
        raise ConfigError("not a Zotero CSV export: no 'Title' column")
    for n, row in enumerate(reader, start=2):
        title = (row.get("Title") or "").strip()
        found = _find_arxiv(
            row.get("Url") or "",
            row.get("DOI") or "",
            row.get("Extra") or "",
            row.get("Archive Location") or "",
        )
        if not title and not found:
            out.problems.append(f"CSV row {n} skipped: no title and no arXiv id")
            continue
        authors = tuple(a.strip() for a in (row.get("Author") or "").split(";") if a.strip())
        out.entries.append(
            LibraryEntry(
                label=f"row {n}",
                title=title,
                arxiv=found,
                abstract=(row.get("Abstract Note") or "").strip(),
                authors=authors,
                year=_year(row.get("Publication Year") or ""),
                url=row.get("Url") or "",
                doi=row.get("DOI") or "",
                tags=_tags(row.get("Manual Tags") or ""),
            )
        )
    return out


def read_id_list(text: str) -> LibraryRead:
    """One arXiv id or URL a line; blank lines and `#` comments ignored."""
    out = LibraryRead()
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        found = _find_arxiv(line, f"arXiv:{line}")
        if found:
            out.entries.append(LibraryEntry(label=f"line {n}", arxiv=found))
        else:
            out.problems.append(f"line {n} skipped: {line[:80]!r} is not an arXiv id or URL")
    return out


def read_library(path: Path) -> LibraryRead:
    """Read `path` by its kind (by extension, else by content); ConfigError naming the file when it cannot
    be read, is larger than `MAX_BYTES` (only that much is read) or holds binary data."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path}: more than {MAX_BYTES:,} bytes, more than a library file should be")
    if (nul := data.find(b"\0")) >= 0:
        raise ConfigError(f"{path}: binary data (a NUL byte at offset {nul}): not BibTeX, CSV or an id list")
    text = data.decode("utf-8-sig", errors="replace")
    suffix = path.suffix.lower()
    if suffix in (".bib", ".bibtex") or re.search(r"^\s*@\w+\s*\{", text, re.M):
        read = read_bibtex(text)
    elif suffix == ".csv" or text.startswith(('"Key"', "Key,", '"Item Type"', "Item Type,")):
        read = read_zotero_csv(text)
    else:
        read = read_id_list(text)
    if not read.entries and not read.problems:
        read.problems.append(f"{path}: no entries found")
    return read
