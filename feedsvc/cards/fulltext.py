"""A paper's full text as a plain structure: sections, display equations, the paper's macros.

Two readers: `from_html` for arXiv's LaTeXML HTML (formulas as `<math alttext="...">`, equation tables
with their numbers) and `from_source` for an arXiv e-print (a tar, possibly gzipped, a single gzipped
.tex, or plain .tex; `\\input` followed, comments dropped). Both cap the bytes they read and raise
`FullTextError` with a one-line reason when the input cannot give a full text (a failed conversion, no
.tex, a PDF-only submission, a huge file); `from_abstract` is the fallback the caller builds then.
`expand_macros` rewrites a formula with the paper's own macros so it renders anywhere.

`FullText.text` is everything, with inline math as `$...$` and display equations as `$$...$$` exactly as
`Equation.latex`, so a quoted equation can be checked with `grounding.is_grounded`.
Imports only the standard library; nothing is built at import time.
"""

from __future__ import annotations

import io
import re
import tarfile
import zlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from posixpath import dirname, join, normpath


class FullTextError(Exception):
    """The input cannot give a full text; the message is one line saying why."""


@dataclass(frozen=True)
class Equation:
    latex: str  # the display as written (\label, \nonumber, \tag removed); multi-line ones as aligned
    number: str | None  # "3", "2.9", "12–13"; None when unnumbered
    section: str  # innermost heading, e.g. "3.1 Method"
    context_before: str
    context_after: str
    index: int  # position among the paper's display equations, from 0
    source: str  # "arXiv HTML" | "LaTeX source"
    path: tuple[str, ...] = ()  # all enclosing headings, outermost first ("Appendix A Proofs", ...)
    label: str | None = None  # the \label key (LaTeX source) or the element id (HTML)
    env: str | None = None  # the theorem-like environment it sits in: "theorem", "proof", "definition", ...
    env_title: str | None = None  # that environment's optional title as written: "Bochner's theorem"
    cited: bool = False  # a \cite right before or after it in the source (the prose drops citations)
    refs: int = 0  # how often the text refers to its \label (\eqref, \ref, \cref, ...)


@dataclass(frozen=True)
class FullText:
    source: str  # "arXiv HTML" | "LaTeX source" | "abstract"
    sections: list[tuple[str, str]]  # (heading, plain text with inline math as $...$)
    equations: list[Equation]
    macros: dict[str, str]
    text: str  # everything, for grounding
    failed: str | None = None  # why it fell back (set on the abstract fallback)
    problems: tuple[str, ...] = field(default=())  # non-fatal: conversion errors, skipped environments


CONTEXT_CHARS = 400
_MAX_MEMBERS = 5000
_MAX_INPUT_DEPTH = 12
_MAX_EXPANSION_PASSES = 12
_MAX_EXPANDED_CHARS = 50_000
_MAX_EXPANSION_STEPS = 5_000

_WS = re.compile(r"\s+")
_ALT_BREAK = re.compile(r"(?<!\\)%\n")  # LaTeXML's line breaks inside alttext: a TeX no-op


def _clip_tail(text: str, n: int = CONTEXT_CHARS) -> str:
    text = _WS.sub(" ", text).strip()
    return text[-n:]


def _clip_head(text: str, n: int = CONTEXT_CHARS) -> str:
    text = _WS.sub(" ", text).strip()
    return text[:n]


def from_abstract(abstract: str, failed: str) -> FullText:
    """The fallback when neither the HTML nor the source gives a full text; `failed` says why."""
    return FullText("abstract", [("Abstract", abstract)], [], {}, abstract, failed=failed)


# ---------------------------------------------------------------- arXiv HTML (LaTeXML) ----------------

_FATAL_MARKERS = (
    "Conversion to HTML had a Fatal error",
    "LaTeXML died",
    "Fatal:",
    "ltx_fatal",
    "Conversion failed",
)
_SECTION_CLASSES = (
    "ltx_chapter",
    "ltx_section",
    "ltx_subsection",
    "ltx_subsubsection",
    "ltx_appendix",
    "ltx_bibliography",
    "ltx_abstract",
)
_SKIP_TAGS = {"script", "style", "svg", "head", "button"}
_BLOCK_TAGS = {
    "p",
    "div",
    "section",
    "article",
    "li",
    "br",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "figcaption",
    "table",
    "figure",
}
_VOID = {"br", "img", "meta", "link", "hr", "input", "col", "area", "base", "wbr", "source"}


def log_failure(log: str) -> str | None:
    """Why a LaTeXML conversion log says the conversion failed, or None (errors alone are not fatal)."""
    for line in log.splitlines():
        s = line.strip()
        if s.startswith("Fatal:") or s == "LaTeXML died!":
            return f"LaTeXML: {s[:160]}"
    return None


class _Frame:
    __slots__ = ("heading", "level")

    def __init__(self, level: str, heading: str = "") -> None:
        self.level = level
        self.heading = heading


def _is_float(tag: str, cls: str, in_equation: bool) -> bool:
    """A figure or table float, or a data table (LaTeXML's `ltx_tabular`): not prose. Display equations are
    tables too (`ltx_equation`), and stay."""
    return tag == "figure" or (tag == "table" and not in_equation and "ltx_tabular" in cls.split())


class _HtmlReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str]] = []  # (tag, role) for every open element
        self.frames: list[_Frame] = []
        self.chunks: list[list] = [["", []]]  # [heading path tuple, parts]
        self.skip = 0
        self.math_depth = 0
        self.heading_buf: list[str] | None = None
        self.eq: dict | None = None  # the display equation being read
        self.eq_depth = 0
        self.row: list[str] | None = None
        self.tag_buf: list[str] | None = None
        self.raw_eqs: list[dict] = []
        self.errors = 0
        self.title = ""
        self.title_buf: list[str] | None = None

    # -- helpers
    def _path(self) -> tuple[str, ...]:
        return tuple(f.heading for f in self.frames if f.heading)

    def _new_chunk(self) -> None:
        self.chunks.append([self._path(), []])

    def _emit(self, s: str) -> None:
        if self.heading_buf is not None:
            self.heading_buf.append(s)
        elif self.title_buf is not None:
            self.title_buf.append(s)
        elif self.tag_buf is not None:
            self.tag_buf.append(s)
        elif self.eq is None:
            self.chunks[-1][1].append(s)

    # -- parser callbacks
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        cls = a.get("class", "")
        if tag in _VOID:
            if tag == "br":
                self._emit(" ")
            return
        role = ""
        if "ltx_ERROR" in cls and not self.math_depth:  # counted in floats too, which are not read
            self.errors += 1
        if self.skip:
            self.stack.append((tag, "skip"))
            self.skip += 1
            return
        if tag in _SKIP_TAGS or _is_float(tag, cls, self.eq is not None):
            self.stack.append((tag, "skip"))
            self.skip = 1
            return
        if tag == "math":
            role = "math"
            self.math_depth += 1
            alt = _ALT_BREAK.sub("", a.get("alttext", "")).strip()
            block = a.get("display") == "block"
            if self.eq is not None:
                if self.row is None:
                    self.row = []
                self.row.append(alt.removeprefix("\\displaystyle").strip())
            elif block:
                self.raw_eqs.append(self._eq_record([[alt]], None, a.get("id")))
            else:
                self._emit(f" ${alt}$ ")
            self.stack.append((tag, role))
            self.skip = 1  # the MathML inside is not text
            return
        if tag == "table" and ("ltx_equation" in cls or "ltx_eqn_table" in cls) and self.eq is None:
            role = "eq"
            self.eq = {"rows": [], "tags": [], "id": a.get("id")}
        elif self.eq is not None and tag == "tr":
            role = "row"
            self.row = []
        elif self.eq is not None and "ltx_tag_equation" in cls:
            role = "tag"
            self.tag_buf = []
        elif tag == "section" and "ltx_paragraph" in cls:
            role = ""  # a run-in \paragraph heading stays part of its section's text
        elif tag == "section" or (tag == "div" and "ltx_abstract" in cls):
            level = next((c for c in _SECTION_CLASSES if c in cls.split()), "ltx_section_other")
            role = "section"
            self.frames.append(_Frame(level, "Abstract" if "ltx_abstract" in cls else ""))
            self._new_chunk()
        elif re.fullmatch(r"h[1-6]", tag) and "ltx_title" in cls:
            if "ltx_title_document" in cls:
                role = "title"
                self.title_buf = []
            elif self.frames and "ltx_title_abstract" not in cls and not self.frames[-1].heading:
                role = "heading"
                self.heading_buf = []
        elif tag in _BLOCK_TAGS:
            self._emit("\n")
        self.stack.append((tag, role))

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        # close up to the matching open tag (LaTeXML's HTML is well formed; this guards the rest)
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                break
        else:
            return
        while len(self.stack) > i:
            t, role = self.stack.pop()
            self._close(t, role)

    def _close(self, tag: str, role: str) -> None:
        if role == "skip":
            self.skip = max(0, self.skip - 1)
            return
        if role == "math":
            self.skip = 0
            self.math_depth -= 1
        elif role == "eq" and self.eq is not None:
            if self.row:
                self.eq["rows"].append(self.row)
            self.row = None
            rows = [r for r in self.eq["rows"] if any(c for c in r)]
            if rows:
                tags = [t for t in self.eq["tags"] if t]
                number = None
                if len(tags) == 1:
                    number = tags[0]
                elif tags:
                    number = f"{tags[0]}–{tags[-1]}"
                self.raw_eqs.append(self._eq_record(rows, number, self.eq["id"]))
            self.eq = None
        elif role == "row" and self.eq is not None:
            if self.row:
                self.eq["rows"].append(self.row)
            self.row = None
        elif role == "tag" and self.eq is not None and self.tag_buf is not None:
            self.eq["tags"].append("".join(self.tag_buf).strip().strip("()"))
            self.tag_buf = None
        elif role == "section":
            self.frames.pop()
            self._new_chunk()
        elif role == "heading" and self.heading_buf is not None:
            heading = _WS.sub(" ", "".join(self.heading_buf)).strip()
            self.heading_buf = None
            if self.frames:
                self.frames[-1].heading = heading
            self._new_chunk()
        elif role == "title" and self.title_buf is not None:
            self.title = _WS.sub(" ", "".join(self.title_buf)).strip()
            self.title_buf = None
        elif tag in _BLOCK_TAGS:
            self._emit("\n")

    def _eq_record(self, rows: list[list[str]], number: str | None, ident: str | None) -> dict:
        latex = _join_rows(rows)
        self.chunks[-1][1].append(f"\n$${latex}$$\n")
        return {
            "latex": latex,
            "number": number,
            "id": ident,
            "chunk": len(self.chunks) - 1,
            "part": len(self.chunks[-1][1]) - 1,
        }

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        self._emit(data)


def _join_rows(rows: list[list[str]]) -> str:
    if len(rows) == 1 and len(rows[0]) == 1:
        return rows[0][0]
    lines = [" & ".join(c for c in r if c) if len(r) > 1 else r[0] for r in rows]
    body = " \\\\ ".join(lines)
    env = "aligned" if any(len(r) > 1 for r in rows) else "gathered"
    return f"\\begin{{{env}}} {body} \\end{{{env}}}"


def _html_failure(head: str, doc: str) -> str | None:
    for marker in _FATAL_MARKERS:
        if marker in doc:
            return f"the HTML says the conversion failed ({marker.strip(':')})"
    if "LaTeXML" not in head and "ltx_document" not in doc:
        return "not LaTeXML HTML (no LaTeXML generator mark and no ltx_document)"
    return None


def from_html(data: bytes, *, max_bytes: int = 20_000_000) -> FullText:
    """Read arXiv's LaTeXML HTML. Raises FullTextError for a failed conversion or an oversized file."""
    if len(data) > max_bytes:
        raise FullTextError(f"HTML is {len(data)} bytes, over the {max_bytes}-byte cap")
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, max_bytes)
    doc = data.decode("utf-8", errors="replace")
    failure = _html_failure(doc[:4000], doc)
    if failure:
        raise FullTextError(failure)
    reader = _HtmlReader()
    try:
        reader.feed(doc)
        reader.close()
    except Exception as e:  # html.parser is lenient; anything it still raises means broken input
        raise FullTextError(f"HTML could not be parsed: {e}") from e
    sections, offsets = _assemble(reader.chunks)
    text = "\n\n".join(f"{h}\n{t}" if h else t for h, t in sections)
    if len(_WS.sub("", text)) < 200:
        raise FullTextError("the HTML has almost no text: the conversion produced an empty document")
    equations = _equations_from_records(reader.raw_eqs, reader.chunks, "arXiv HTML")
    problems = (
        (f"{reader.errors} ltx_ERROR marks (undefined macros or environments)",) if reader.errors else ()
    )
    del offsets
    return FullText("arXiv HTML", sections, equations, {}, text, problems=problems)


def _assemble(chunks: list[list]) -> tuple[list[tuple[str, str]], list[int]]:
    """Merge the reader's chunks into (heading, text) sections in document order."""
    sections: list[tuple[str, str]] = []
    offsets: list[int] = []
    for path, parts in chunks:
        body = _tidy("".join(parts))
        offsets.append(len(sections))
        if not body:
            continue
        heading = path[-1] if path else ""
        if sections and sections[-1][0] == heading:
            sections[-1] = (heading, sections[-1][1] + "\n" + body)
        else:
            sections.append((heading, body))
    return sections, offsets


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r" ?\n[ \n]*", "\n", text)
    return text.strip()


def _equations_from_records(records: list[dict], chunks: list[list], source: str) -> list[Equation]:
    out: list[Equation] = []
    for i, r in enumerate(records):
        path, parts = chunks[r["chunk"]]
        before = "".join(p for p in parts[: r["part"]])
        after = "".join(p for p in parts[r["part"] + 1 :])
        if len(after) < CONTEXT_CHARS:  # the paragraph may continue in the next chunk of the same section
            for p2, parts2 in chunks[r["chunk"] + 1 : r["chunk"] + 3]:
                if p2 == path:
                    after += "".join(parts2)
        out.append(
            Equation(
                latex=r["latex"],
                number=r["number"],
                section=path[-1] if path else "",
                context_before=_clip_tail(before),
                context_after=_clip_head(after),
                index=i,
                source=source,
                path=tuple(path),
                label=r.get("id"),
            )
        )
    return out


# ---------------------------------------------------------------- LaTeX source -------------------------


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    d = zlib.decompressobj(wbits=47)
    try:
        out = d.decompress(data, max_bytes + 1)
    except zlib.error as e:
        raise FullTextError(f"gzip data is corrupt: {e}") from e
    if len(out) > max_bytes:
        raise FullTextError(f"decompressed size exceeds the {max_bytes}-byte cap")
    return out


def _is_tar(data: bytes) -> bool:
    return len(data) > 262 and data[257:262] == b"ustar"


def _read_tar(data: bytes, max_bytes: int) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for n, member in enumerate(tar):
                if n >= _MAX_MEMBERS:
                    raise FullTextError(f"tarball has more than {_MAX_MEMBERS} members")
                if not member.isfile():
                    continue
                name = normpath(member.name).lstrip("/")
                if name.startswith(".."):
                    continue
                if not name.lower().endswith((".tex", ".sty", ".ltx")):
                    continue
                if member.size > max_bytes or total + member.size > max_bytes:
                    raise FullTextError(
                        f"{name} ({member.size} bytes) takes the source over the {max_bytes}-byte cap"
                    )
                fh = tar.extractfile(member)
                if fh is None:
                    continue
                files[name] = fh.read(max_bytes + 1)
                total += len(files[name])
    except tarfile.TarError as e:
        raise FullTextError(f"tarball is corrupt: {e}") from e
    return files


def _decode(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


_COMMENT_ENV = re.compile(r"\\begin\{comment\}.*?\\end\{comment\}", re.S)
_IFFALSE = re.compile(r"\\iffalse\b.*?\\fi\b", re.S)


def strip_comments(tex: str) -> str:
    """Drop everything after an unescaped % on each line, and comment environments."""
    out = []
    for line in tex.split("\n"):
        i = 0
        while True:
            j = line.find("%", i)
            if j < 0:
                break
            k = j
            while k > 0 and line[k - 1] == "\\":
                k -= 1
            if (j - k) % 2 == 0:  # an even number of backslashes: the % starts a comment
                line = line[:j]
                break
            i = j + 1
        out.append(line)
    tex = "\n".join(out)
    tex = _COMMENT_ENV.sub("", tex)
    return _IFFALSE.sub("", tex)


_DOCCLASS = re.compile(r"\\documentclass\s*(?:\[[^\]]*\])?\s*\{([^}]*)\}")
_BEGIN_DOC = re.compile(r"\\begin\s*\{document\}")
_END_DOC = re.compile(r"\\end\s*\{document\}")
_INPUT = re.compile(r"\\(input|include|subfile)\s*(?:\{([^}]*)\}|\s+([^\s{}\\]+))")


def _find_main(texts: dict[str, str]) -> str:
    cands = []
    for name, t in texts.items():
        if not name.lower().endswith((".tex", ".ltx")):
            continue
        m = _DOCCLASS.search(t)
        if m and _BEGIN_DOC.search(t):
            sub = "subfiles" in m.group(1)
            cands.append(
                (sub, name.count("/"), name.rsplit("/", 1)[-1] not in ("main.tex", "ms.tex"), -len(t), name)
            )
    if not cands:
        raise FullTextError("no main .tex file (none has \\documentclass and \\begin{document})")
    return min(cands)[-1]


def _resolve(texts: dict[str, str], base: str, ref: str) -> str | None:
    ref = ref.strip().strip('"')
    for cand in (ref, ref + ".tex"):
        p = normpath(join(base, cand)) if base else normpath(cand)
        if p in texts:
            return p
    return None


def _inline_inputs(
    texts: dict[str, str], name: str, base: str, depth: int, seen: set[str], problems: list[str]
) -> str:
    tex = texts[name]

    def repl(m: re.Match) -> str:
        ref = m.group(2) or m.group(3) or ""
        target = _resolve(texts, base, ref)
        if target is None:
            if not ref.endswith((".bbl", ".pdf_tex", ".tikz")):
                problems.append(f"\\{m.group(1)}{{{ref}}}: file not in the source")
            return " "
        if target in seen or depth >= _MAX_INPUT_DEPTH:
            problems.append(f"\\{m.group(1)}{{{ref}}}: skipped (cycle or too deep)")
            return " "
        child = _inline_inputs(texts, target, base, depth + 1, seen | {target}, problems)
        if m.group(1) == "subfile":  # a subfiles child has its own preamble: keep its body only
            b = _BEGIN_DOC.search(child)
            e = _END_DOC.search(child)
            if b:
                child = child[b.end() : e.start() if e and e.start() > b.end() else len(child)]
        return "\n" + child + "\n"

    return _INPUT.sub(repl, tex)


def _read_group(s: str, i: int) -> tuple[str, int] | None:
    """The balanced {...} group starting at s[i] (after spaces): (content, index after), or None."""
    n = len(s)
    while i < n and s[i] in " \t\n":
        i += 1
    if i >= n or s[i] != "{":
        return None
    depth = 0
    j = i
    while j < n:
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return s[i + 1 : j], j + 1
        j += 1
    return None


def _optional_arg(s: str, i: int, limit: int = 500) -> str | None:
    """The [...] argument starting at s[i] (after spaces), brackets inside braces included, or None."""
    while i < len(s) and s[i] in " \t\n":
        i += 1
    if i >= len(s) or s[i] != "[":
        return None
    depth = 0
    for j in range(i + 1, min(len(s), i + limit)):
        c = s[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "]" and depth <= 0 and s[j - 1] != "\\":
            return s[i + 1 : j]
    return None


_CS = re.compile(r"\\([A-Za-z@]+|.)")
_NEWCMD = re.compile(r"\\(?:re|provide)?newcommand\*?\s*")
_DEF = re.compile(r"\\[gex]?def\s*(\\[A-Za-z@]+)((?:#\d)*)\s*(?=\{)")
_MATHOP = re.compile(r"\\DeclareMathOperator(\*?)\s*")


def collect_macros(tex: str, problems: list[str] | None = None) -> dict[str, str]:
    """The paper's \\newcommand, \\renewcommand, \\def and \\DeclareMathOperator macros, name -> body.

    A macro's arity is the highest #k its body uses. Macros with an optional first argument are left out
    (their calls cannot be expanded without guessing), as are definitions with unbalanced braces.
    """
    macros: dict[str, str] = {}
    skipped = 0
    for m in _NEWCMD.finditer(tex):
        i = m.end()
        g = _read_group(tex, i)
        if g is not None:
            name, i = g[0].strip(), g[1]
        else:
            cs = _CS.match(tex, i)
            if not cs:
                continue
            name, i = cs.group(0), cs.end()
        if not re.fullmatch(r"\\[A-Za-z@]+", name):
            continue
        am = re.compile(r"\s*\[(\d)\]").match(tex, i)
        if am:
            i = am.end()
        if re.compile(r"\s*\[").match(tex, i):  # an optional argument with a default
            skipped += 1
            continue
        body = _read_group(tex, i)
        if body is None:
            skipped += 1
            continue
        macros[name] = body[0].strip()
    for m in _DEF.finditer(tex):
        body = _read_group(tex, m.end())
        if body is None:
            skipped += 1
            continue
        macros[m.group(1)] = body[0].strip()
    for m in _MATHOP.finditer(tex):
        g = _read_group(tex, m.end())
        if g is None:
            cs = _CS.match(tex, m.end())
            if not cs:
                continue
            name, i = cs.group(0), cs.end()
        else:
            name, i = g[0].strip(), g[1]
        body = _read_group(tex, i)
        if body is None or not re.fullmatch(r"\\[A-Za-z@]+", name):
            skipped += 1
            continue
        macros[name] = f"\\operatorname{m.group(1)}{{{body[0].strip()}}}"
    if skipped and problems is not None:
        problems.append(f"{skipped} macro definitions skipped (optional arguments or unbalanced braces)")
    return macros


_ARG_REF = re.compile(r"#([1-9])")


def _arity(body: str) -> int:
    return max((int(k) for k in _ARG_REF.findall(body)), default=0)


def _read_arg(s: str, i: int) -> tuple[str, int] | None:
    n = len(s)
    while i < n and s[i] in " \t\n":
        i += 1
    if i >= n:
        return None
    if s[i] == "{":
        return _read_group(s, i)
    if s[i] == "\\":
        m = _CS.match(s, i)
        return (m.group(0), m.end()) if m else None
    if s[i] == "}":
        return None
    return s[i], i + 1


class MacroBudgetError(ValueError):
    """Expanding a formula's macros would pass a bound; the message says which (one line)."""


def expand_macros(latex: str, macros: dict[str, str]) -> str:
    """`latex` with the paper's macros expanded (#1..#9 arguments), repeated until stable, and with its
    link and image commands made inert (`inert_latex`).

    A macro still present after the last pass (a recursive one) is left as it is, as is a call whose
    arguments are missing. Raises `MacroBudgetError` when the output would pass `_MAX_EXPANDED_CHARS`
    or the expansion would replace more than `_MAX_EXPANSION_STEPS` calls (a macro bomb): the caller
    refuses that formula. Memory stays within the output bound plus one macro body.
    """
    if not macros:
        return inert_latex(latex)
    arities = {k: _arity(v) for k, v in macros.items()}
    steps = 0
    for _ in range(_MAX_EXPANSION_PASSES):
        out: list[str] = []
        size = 0
        i = 0
        for m in _CS.finditer(latex):
            if m.start() < i:
                continue
            name = m.group(0)
            if name not in macros:
                continue
            j = m.end()
            args = []
            for _k in range(arities[name]):
                a = _read_arg(latex, j)
                if a is None:
                    break
                args.append(a[0])
                j = a[1]
            if len(args) < arities[name]:
                continue
            steps += 1
            if steps > _MAX_EXPANSION_STEPS:
                raise MacroBudgetError(
                    f"macro expansion refused: more than {_MAX_EXPANSION_STEPS:,} macro calls"
                )
            body = _ARG_REF.sub(lambda r, args=args: args[int(r.group(1)) - 1], macros[name])
            # a control word directly followed by a letter would merge with it: keep them apart
            if re.search(r"\\[A-Za-z@]+$", body) and j < len(latex) and latex[j].isalpha():
                body += " "
            size += m.start() - i + len(body)
            if size > _MAX_EXPANDED_CHARS:
                raise MacroBudgetError(
                    f"macro expansion refused: it would be more than {_MAX_EXPANDED_CHARS:,} characters"
                )
            out.append(latex[i : m.start()])
            out.append(body)
            i = j
        if not out:
            break
        out.append(latex[i:])
        latex = "".join(out)
        if len(latex) > _MAX_EXPANDED_CHARS:
            raise MacroBudgetError(
                f"macro expansion refused: it would be more than {_MAX_EXPANDED_CHARS:,} characters"
            )
    return inert_latex(strip_presentation(latex))


_LINK_COMMANDS = ("href", "url", "includegraphics")
_LINK_CS = re.compile(r"\\(?:href|url|includegraphics)(?![A-Za-z@])")
_OPTIONS = re.compile(r"\s*\[[^\]]*\]")
_WEB_TARGET = re.compile(r"https?://[^\s\\{}]+", re.I)


def inert_latex(latex: str) -> str:
    """`latex` with no command a math viewer (MathJax, KaTeX) would turn into a link or image off the
    web: `\\href{t}{text}` and `\\url{t}` whose target `t` is not an http(s) URL lose the command and
    the target (`\\href` keeps `{text}`), and `\\includegraphics[...]{...}` is dropped whatever its target.
    Every formula shown on any channel passes through here (`expand_macros` calls it)."""
    if not _LINK_CS.search(latex):
        return latex
    out: list[str] = []
    i = 0
    while (m := _CS.search(latex, i)) is not None:
        name = m.group(1)
        if name not in _LINK_COMMANDS:
            out.append(latex[i : m.end()])
            i = m.end()
            continue
        j = m.end()
        if name == "includegraphics" and (opt := _OPTIONS.match(latex, j)):
            j = opt.end()
        target = _read_arg(latex, j)
        if name != "includegraphics" and target and _WEB_TARGET.fullmatch(target[0].strip()):
            out.append(latex[i : target[1]])
        else:
            out.append(latex[i : m.start()])
        i = target[1] if target else j
    out.append(latex[i:])
    return "".join(out)


_DISPLAY_ENVS = {
    "equation": ("single", True),
    "equation*": ("single", False),
    "displaymath": ("single", False),
    "dmath": ("single", True),
    "dmath*": ("single", False),
    "align": ("aligned", True),
    "align*": ("aligned", False),
    "flalign": ("aligned", True),
    "flalign*": ("aligned", False),
    "alignat": ("aligned", True),
    "alignat*": ("aligned", False),
    "eqnarray": ("aligned", True),
    "eqnarray*": ("aligned", False),
    "gather": ("gathered", True),
    "gather*": ("gathered", False),
    "multline": ("multline", True),
    "multline*": ("multline", False),
}
_DROP_ENVS = (
    "figure",
    "figure*",
    "table",
    "table*",
    "wrapfigure",
    "wraptable",
    "subfigure",
    "tabular",
    "tabular*",
    "tabularx",
    "tikzpicture",
    "lstlisting",
    "verbatim",
    "algorithmic",
    "minted",
    "thebibliography",
    "filecontents",
)
_TOKEN = re.compile(
    r"\\begin\s*\{([^}]+)\}|\\end\s*\{([^}]+)\}|(?<!\\)\\\[|(?<!\\)\$\$|"
    r"\\(chapter|section|subsection|subsubsection|paragraph)(\*?)\s*(?:\[[^\]]*\])?\s*(?=\{)|\\appendix\b"
)
_LABEL = re.compile(r"\\label\s*\{([^}]*)\}")
_NONUM = re.compile(r"\\(?:nonumber|notag)\b")
_TAG = re.compile(r"\\tag\*?\s*\{([^}]*)\}")
_ROW_SPLIT = re.compile(r"\\\\(?:\s*\[[^\]]*\])?")


def _split_rows(body: str) -> list[str]:
    """Top-level rows of an align-like body (\\\\ inside braces or inner environments do not count)."""
    rows, depth, env, start, i = [], 0, 0, 0, 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            if body.startswith("\\begin", i):
                env += 1
            elif body.startswith("\\end", i):
                env -= 1
            elif body.startswith("\\\\", i) and depth == 0 and env == 0:
                rows.append(body[start:i])
                m = _ROW_SPLIT.match(body, i)
                i = m.end() if m else i + 2
                start = i
                continue
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        i += 1
    rows.append(body[start:])
    return [r for r in rows if r.strip()]


_PRESENTATION = re.compile(
    r"\\(?:xspace|tiny|scriptsize|footnotesize|small|normalsize|large|Large|LARGE|huge|Huge)(?![A-Za-z@])\s?"
    r"|\\(?:textcolor|color)\s*(?:\[[^\]]*\])?\s*\{[^{}]*\}"  # a colour: \textcolor{Red}{x} shows {x}
)


def strip_presentation(latex: str) -> str:
    """`latex` without presentation macros (\\xspace, size commands, colours) that mean nothing in a shown
    formula."""
    return _PRESENTATION.sub("", latex)


def _clean_display(body: str) -> str:
    body = strip_presentation(_LABEL.sub("", body))
    body = _NONUM.sub("", body)
    body = _TAG.sub("", body)
    return _WS.sub(" ", body).strip().rstrip("\\").strip()


_TEXT_CMD_ARG = re.compile(
    r"\\(?:textbf|textit|emph|texttt|textsc|textrm|textsf|underline|mbox|text|footnote|caption|"
    r"textsuperscript|url|hbox|paragraph|subparagraph)\*?\s*(?:\[[^\]]*\])?\s*\{([^{}]*)\}"
)
_REF_CMD = re.compile(r"~?\\(?:eqref|ref|cref|Cref|autoref|pageref)\s*\{[^}]*\}")
# Any command whose name holds "cite" (\citealt, \autocite, \citenum, \Citet, a paper's own \citePZt,
# ...), but not those that only configure citations or list a reference without citing it in the text.
_CITE_CMD = re.compile(
    r"~?\\(?!nocite\b|setcitestyle\b|defcitealias\b)[A-Za-z]*[cC]ite[A-Za-z]*\*?"
    r"\s*(?:\[[^\]]*\])*\s*\{[^}]*\}"
)
_DROP_CMD_ARG = re.compile(
    r"\\(?:label|vspace|hspace|includegraphics|bibliography|bibliographystyle|"
    r"addbibresource|usepackage|newcommand|renewcommand)\*?\s*(?:\[[^\]]*\])?\s*\{[^{}]*\}"
)
_INLINE_PAREN = re.compile(r"\\\((.*?)\\\)", re.S)


def latex_prose(tex: str) -> str:
    """Paper prose as plain text: formatting commands unwrapped, citations and references dropped,
    inline math kept as $...$."""
    tex = _INLINE_PAREN.sub(lambda m: "$" + m.group(1) + "$", tex)
    tex = _CITE_CMD.sub("", tex)
    tex = _REF_CMD.sub(" (ref)", tex)
    tex = _DROP_CMD_ARG.sub("", tex)
    for _ in range(3):
        tex = _TEXT_CMD_ARG.sub(lambda m: m.group(1), tex)
    tex = re.sub(
        r"\\(?:item|noindent|centering|small|footnotesize|newpage|clearpage|maketitle|"
        r"bigskip|medskip|smallskip|par)\b(?:\[[^\]]*\])?",
        " ",
        tex,
    )
    tex = tex.replace("\\%", "%").replace("~", " ").replace("``", '"').replace("''", '"')
    tex = re.sub(r"\\begin\s*\{[^}]*\}(?:\[[^\]]*\])?|\\end\s*\{[^}]*\}", "\n", tex)
    return _tidy(tex)


_CITE_BEFORE, _CITE_AFTER = 250, 120  # characters of raw source around a display searched for a \cite
_THEOREM_KINDS = (
    ("proof", "proof"),
    ("theorem", "theorem"),
    ("thm", "theorem"),
    ("lem", "lemma"),
    ("prop", "proposition"),
    ("cor", "corollary"),
    ("claim", "lemma"),
    ("def", "definition"),
    ("assum", "assumption"),
    ("ass", "assumption"),
    ("hyp", "assumption"),
    ("cond", "assumption"),
    ("ex", "example"),
    ("rem", "remark"),
    ("obs", "remark"),
    ("note", "remark"),
    ("fact", "remark"),
    ("problem", "problem"),
)


def theorem_kind(env: str) -> str | None:
    """The kind of a theorem-like environment by its name ("thm" -> "theorem", "assumption1" ->
    "assumption"), or None for any other environment."""
    name = env.lower().rstrip("*")
    if name in _DISPLAY_ENVS or name in _DROP_ENVS or name in ("document", "abstract", "example*"):
        return None
    return next((kind for prefix, kind in _THEOREM_KINDS if name.startswith(prefix)), None)


def _counter_label(n: int, letters: bool) -> str:
    if not letters:
        return str(n)
    s = ""
    while n > 0:
        n, r = divmod(n - 1, 26)
        s = chr(65 + r) + s
    return s


_CHAPTER_CLASSES = ("book", "report", "memoir", "scrbook", "scrreprt")


@dataclass
class _BodyReader:
    """One pass over a LaTeX body: the heading and equation counters, the sections read so far (each a
    heading path and its parts: prose, or an `\\x00EQ<n>` placeholder for display equation n) and the
    display equations' records."""

    body: str
    chapters: bool  # the document class numbers chapters
    per_section: bool  # equations are numbered within sections
    problems: list[str]
    chap: int = 0
    sec: int = 0
    sub: int = 0
    subsub: int = 0
    eqn: int = 0
    appendix: bool = False
    path: list[str] = field(default_factory=list)  # [chapter?, section, subsection, subsubsection]
    sections: list[list] = field(default_factory=lambda: [["", []]])  # (path tuple, parts)
    records: list[dict] = field(default_factory=list)
    drop_depth: list[str] = field(default_factory=list)  # the open environments whose content is dropped
    envs: list[str] = field(default_factory=list)  # the open theorem-like environments, as `theorem_kind`s
    titles: list[str | None] = field(default_factory=list)  # their optional titles ("Bochner's theorem")

    @property
    def levels(self) -> list[str]:
        """The heading levels that open a section, outermost first."""
        if self.chapters:
            return ["chapter", "section", "subsection", "subsubsection"]
        return ["section", "subsection", "subsubsection"]

    def read(self) -> None:
        """Walk the body token by token, up to `\\end{document}`."""
        body, i = self.body, 0
        while i < len(body):
            m = _TOKEN.search(body, i)
            if not m:
                self.emit(body[i:])
                break
            self.emit(body[i : m.start()])
            step = self._token(m)
            if step is None:
                break
            i = step

    def emit(self, s: str) -> None:
        """Add `s` to the current section, unless inside a dropped environment."""
        if not self.drop_depth:
            self.sections[-1][1].append(s)

    def _token(self, m: re.Match[str]) -> int | None:
        """Handle one token; the offset to read on from, or None at `\\end{document}`."""
        tok = m.group(0)
        env = m.group(1).strip() if m.group(1) is not None else None
        if env in _DISPLAY_ENVS and not self.drop_depth:
            return self._display_env(m, env)
        if tok in ("\\[", "$$") and not self.drop_depth:
            return self._display_delimited(m, tok)
        if env in _DROP_ENVS:
            self.drop_depth.append(env)
            return m.end()
        if m.group(2) is not None and self.drop_depth and m.group(2).strip() == self.drop_depth[-1]:
            self.drop_depth.pop()
            return m.end()
        if tok.startswith("\\appendix"):
            self.appendix = True
            self.chap = self.sec = self.sub = self.subsub = 0
            return m.end()
        if m.group(3):
            return self._heading(m)
        if m.group(2) == "document":
            return None
        if env is not None and theorem_kind(env):
            self.envs.append(theorem_kind(env) or "")
            self.titles.append(_optional_arg(self.body, m.end()))
        elif m.group(2) is not None and theorem_kind(m.group(2).strip()) and self.envs:
            self.envs.pop()
            self.titles.pop()
        self.emit(tok)
        return m.end()

    def _display_env(self, m: re.Match[str], env: str) -> int:
        """A display environment (equation, align, ...): its rows numbered and recorded as one display."""
        end = re.compile(r"\\end\s*\{" + re.escape(env) + r"\}").search(self.body, m.end())
        if not end:
            line = self.body.count("\n", 0, m.start()) + 1
            self.problems.append(
                f"unterminated \\begin{{{env}}} (line {line} of the merged source): "
                "the rest of the document was read as text"
            )
            return m.end()
        inner = self.body[m.end() : end.start()]
        kind, numbered = _DISPLAY_ENVS[env]
        if env.startswith("alignat"):
            inner = re.sub(r"^\s*\{[^}]*\}", "", inner)
        label_m = _LABEL.search(inner)
        rows = _split_rows(inner) if kind != "single" else [inner]
        number = _number_span(self._row_numbers(rows, kind, numbered))
        latex = _display_latex(inner, rows, kind)
        _add_display(self.sections, self.records, latex, number, label_m.group(1) if label_m else None)
        self._annotate(m.start(), end.end())
        return end.end()

    def _annotate(self, start: int, end: int) -> None:
        """Mark the display just recorded with its theorem-like environment and a nearby citation."""
        if not self.records or self.records[-1]["part"] != len(self.sections[-1][1]) - 1:
            return
        near = self.body[max(0, start - _CITE_BEFORE) : start] + self.body[end : end + _CITE_AFTER]
        self.records[-1]["env"] = self.envs[-1] if self.envs else None
        self.records[-1]["env_title"] = self.titles[-1] if self.titles else None
        self.records[-1]["cited"] = bool(_CITE_CMD.search(near))
        label = self.records[-1]["label"]
        if label:
            self.records[-1]["refs"] = len(
                re.findall(r"\\\w*ref\*?\s*\{" + re.escape(label) + r"\}", self.body)
            )

    def _row_numbers(self, rows: list[str], kind: str, numbered: bool) -> list[str]:
        """The equation numbers the rows show: their \\tag, or the next number unless \\nonumber."""
        numbers: list[str] = []
        for row in rows:
            tag = _TAG.search(row)
            if tag:
                numbers.append(tag.group(1))
            elif numbered and not _NONUM.search(row) and (kind != "multline" or row is rows[-1]):
                self.eqn += 1
                numbers.append(self._number_prefix() + str(self.eqn))
        return numbers

    def _number_prefix(self) -> str:
        """The chapter or section part of an equation number ("2." in "2.3"), if any."""
        if self.chapters:
            return f"{_counter_label(self.chap, self.appendix)}."
        if self.per_section:
            return f"{_counter_label(self.sec, self.appendix)}."
        return ""

    def _display_delimited(self, m: re.Match[str], tok: str) -> int:
        """A `\\[...\\]` or `$$...$$` display, recorded with its \\tag if it has one."""
        close = "\\]" if tok == "\\[" else "$$"
        j = self.body.find(close, m.end())
        if j < 0:
            line = self.body.count("\n", 0, m.start()) + 1
            self.problems.append(f"unterminated {tok} (line {line} of the merged source)")
            return m.end()
        latex = _clean_display(self.body[m.end() : j])
        tag = _TAG.search(self.body[m.end() : j])
        _add_display(self.sections, self.records, latex, tag.group(1) if tag else None, None)
        self._annotate(m.start(), j + len(close))
        return j + len(close)

    def _heading(self, m: re.Match[str]) -> int:
        """A sectioning command: a new section with its numbered heading (a \\paragraph stays inline)."""
        level, starred = m.group(3), bool(m.group(4))
        g = _read_group(self.body, m.end())
        if g is None:
            return m.end()
        title = latex_prose(g[0]).replace("\n", " ")
        if level == "paragraph":
            self.emit(f"\n{title}. ")
            return g[1]
        if level not in self.levels:
            return g[1]
        depth = self.levels.index(level)
        num = "" if starred else self._heading_number(level, depth)
        heading = f"{num} {title}".strip()
        self.path[:] = self.path[:depth] + [""] * max(0, depth - len(self.path)) + [heading]
        self.sections.append([tuple(p for p in self.path if p), []])
        return g[1]

    def _heading_number(self, level: str, depth: int) -> str:
        """Advance the counters for a numbered heading at `level` and return its number ("2.1", "A")."""
        self._advance(level)
        if level == "chapter":
            num = _counter_label(self.chap, self.appendix)
        else:
            chap = f"{_counter_label(self.chap, self.appendix)}." if self.chapters else ""
            sec = _counter_label(self.sec, self.appendix and not self.chapters)
            if level == "section":
                num = chap + sec
            elif level == "subsection":
                num = chap + f"{sec}.{self.sub}"
            else:
                num = chap + f"{sec}.{self.sub}.{self.subsub}"
        return f"Appendix {num}" if self.appendix and depth == 0 else num

    def _advance(self, level: str) -> None:
        """Count a numbered heading at `level`: reset the levels below it, and the equations where they
        are numbered within it."""
        if level == "chapter":
            self.chap += 1
            self.sec = self.sub = self.subsub = 0
            self.eqn = 0
        elif level == "section":
            self.sec += 1
            self.sub = self.subsub = 0
            if self.per_section and not self.chapters:
                self.eqn = 0
        elif level == "subsection":
            self.sub += 1
            self.subsub = 0
        else:
            self.subsub += 1


def _number_span(numbers: list[str]) -> str | None:
    """A display's number: its one number, "first–last" for several rows, None when unnumbered."""
    if len(numbers) == 1:
        return numbers[0]
    if numbers:
        return f"{numbers[0]}–{numbers[-1]}"
    return None


def _display_latex(inner: str, rows: list[str], kind: str) -> str:
    """A display environment's LaTeX, cleaned, its rows joined in a `kind` environment when there are
    several (or one with alignment marks)."""
    if kind == "single":
        return _clean_display(inner)
    if kind == "multline":
        return "\\begin{gathered} " + " \\\\ ".join(_clean_display(r) for r in rows) + " \\end{gathered}"
    cleaned = [_clean_display(r) for r in rows]
    cleaned = [r for r in cleaned if r]
    if len(cleaned) == 1 and "&" not in cleaned[0]:
        return cleaned[0]
    return f"\\begin{{{kind}}} " + " \\\\ ".join(cleaned) + f" \\end{{{kind}}}"


def _source_equations(
    sections: list[list], records: list[dict], prose_parts: list[list[str]]
) -> list[Equation]:
    """The display equations, each with its section path and the prose around it."""
    equations: list[Equation] = []
    for k, r in enumerate(records):
        sp, pi = r["section"], r["part"]
        parts = prose_parts[sp]
        before = " ".join(p for p in parts[:pi] if not p.startswith("\x00EQ"))
        after = " ".join(p for p in parts[pi + 1 :] if not p.startswith("\x00EQ"))
        p_path = sections[sp][0]
        equations.append(
            Equation(
                latex=r["latex"],
                number=r["number"],
                section=p_path[-1] if p_path else "",
                context_before=_clip_tail(before),
                context_after=_clip_head(after),
                index=k,
                source="LaTeX source",
                path=tuple(p_path),
                label=r["label"],
                env=r.get("env"),
                env_title=r.get("env_title"),
                cited=r.get("cited", False),
                refs=r.get("refs", 0),
            )
        )
    return equations


def _source_sections(
    sections: list[list], records: list[dict], prose_parts: list[list[str]]
) -> list[tuple[str, str]]:
    """(heading, text) per non-empty section, equations as $$...$$ lines; a heading that repeats the
    previous one continues it."""
    out_sections: list[tuple[str, str]] = []
    for (p_path, _parts), parts in zip(sections, prose_parts, strict=True):
        text = _tidy(
            "\n".join(
                f"\n$${records[int(p[3:])]['latex']}$$\n" if p.startswith("\x00EQ") else p for p in parts
            )
        )
        if not text:
            continue
        heading = p_path[-1] if p_path else ""
        if out_sections and out_sections[-1][0] == heading:
            out_sections[-1] = (heading, out_sections[-1][1] + "\n" + text)
        else:
            out_sections.append((heading, text))
    return out_sections


def _parse_body(
    body: str, docclass: str, per_section: bool, problems: list[str]
) -> tuple[list[tuple[str, str]], list[Equation], str]:
    """The body's sections, display equations and full text; what could not be read goes to `problems`."""
    reader = _BodyReader(body, docclass in _CHAPTER_CLASSES, per_section, problems)
    reader.read()
    # prose per section; equations keep their placeholders so offsets stay aligned
    prose_parts = [
        [latex_prose(p) if not p.startswith("\x00EQ") else p for p in parts]
        for _path, parts in reader.sections
    ]
    equations = _source_equations(reader.sections, reader.records, prose_parts)
    out_sections = _source_sections(reader.sections, reader.records, prose_parts)
    full = "\n\n".join(f"{h}\n{t}" if h else t for h, t in out_sections)
    return out_sections, equations, full


def _add_display(
    sections: list[list], records: list[dict], latex: str, number: str | None, label: str | None
) -> None:
    if not latex:
        return
    records.append(
        {
            "latex": latex,
            "number": number,
            "label": label,
            "section": len(sections) - 1,
            "part": len(sections[-1][1]),
        }
    )
    sections[-1][1].append(f"\x00EQ{len(records) - 1}")


def _abstract(body: str) -> str | None:
    m = re.search(r"\\begin\s*\{abstract\}(.*?)\\end\s*\{abstract\}", body, re.S)
    return latex_prose(m.group(1)) if m else None


def from_source(data: bytes, *, filename: str = "", max_bytes: int = 20_000_000) -> FullText:
    """Read an arXiv e-print: a tar (possibly gzipped), a single gzipped .tex, or plain .tex."""
    if len(data) > max_bytes:
        raise FullTextError(f"source is {len(data)} bytes, over the {max_bytes}-byte cap")
    if data.lstrip()[:5] == b"%PDF-" or filename.lower().endswith(".pdf"):
        raise FullTextError("PDF-only submission: there is no LaTeX source")
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, max_bytes)
        if data.lstrip()[:5] == b"%PDF-":
            raise FullTextError("PDF-only submission (gzipped PDF): there is no LaTeX source")
    if _is_tar(data):
        raw = _read_tar(data, max_bytes)
        if not any(k.lower().endswith((".tex", ".ltx")) for k in raw):
            raise FullTextError("the source tarball has no .tex file")
    else:
        name = re.sub(r"\.gz$", "", filename.rsplit("/", 1)[-1]) or "main.tex"
        if not name.endswith(".tex"):
            name = "main.tex"
        raw = {name: data}
    texts = {k: strip_comments(_decode(v)) for k, v in raw.items()}
    if len(texts) == 1 and not _BEGIN_DOC.search(next(iter(texts.values()))):
        only = next(iter(texts.values()))
        if not re.search(r"\\(?:section|begin\s*\{(?:equation|align)|documentclass)", only):
            raise FullTextError("the file is not LaTeX (no \\documentclass, \\begin{document} or \\section)")
        texts = {next(iter(texts)): "\\documentclass{article}\n\\begin{document}\n" + only}
    main = _find_main(texts)
    problems: list[str] = []
    merged = _inline_inputs(texts, main, dirname(main), 0, {main}, problems)
    if merged.count("{") != merged.count("}"):
        problems.append(f"unbalanced braces ({merged.count('{')} {{ and {merged.count('}')} }})")
    b = _BEGIN_DOC.search(merged)
    if b is None:
        raise FullTextError(f"{main} has no \\begin{{document}} once comments are dropped")
    preamble, body = merged[: b.start()], merged[b.end() :]
    sty = "".join(
        texts[p]
        for p in texts
        if p.endswith(".sty")
        and re.search(
            r"\\usepackage\s*(?:\[[^\]]*\])?\s*\{[^}]*\b" + re.escape(p.rsplit("/", 1)[-1][:-4]) + r"\b",
            preamble,
        )
    )
    macros = collect_macros(sty + "\n" + merged, problems)
    dc = _DOCCLASS.search(preamble)
    docclass = dc.group(1).strip() if dc else "article"
    per_section = bool(re.search(r"\\numberwithin\s*\{equation\}\s*\{section\}", preamble))
    sections, equations, text = _parse_body(body, docclass, per_section, problems)
    abstract = _abstract(body)
    if abstract and not any(h == "Abstract" for h, _ in sections):
        sections.insert(0, ("Abstract", abstract))
    if len(_WS.sub("", text)) < 200 and not equations:
        raise FullTextError("the LaTeX source has almost no text once comments are dropped")
    return FullText("LaTeX source", sections, equations, macros, text, problems=tuple(problems))


__all__ = [
    "Equation",
    "FullText",
    "FullTextError",
    "MacroBudgetError",
    "collect_macros",
    "expand_macros",
    "from_abstract",
    "from_html",
    "from_source",
    "inert_latex",
    "latex_prose",
    "log_failure",
    "strip_comments",
    "strip_presentation",
    "theorem_kind",
]
