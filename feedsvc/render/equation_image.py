"""A LaTeX formula as a tightly cropped PNG, drawn by matplotlib's mathtext (no TeX installation).

mathtext reads a subset of LaTeX, so `normalize` first rewrites the common constructs it lacks into ones
it reads with the same meaning (`\\mathbb`, `\\operatorname*`, `\\bm`, `\\coloneqq`, `\\lVert`, `\\tfrac`,
`\\xrightarrow`, `\\implies`, sizing commands such as `\\Big`, `\\label`/`\\tag`/`\\nonumber`, ...) and
turns the rows of `aligned`/`align`/`gathered`/`split` into lines, one below the other. What still cannot
be drawn faithfully (`cases`, matrices, `\\cancel`, an unknown macro, a glyph no font has) gives None:
`latex_to_png` never raises. Each call draws on its own `Figure` with the Agg canvas (never pyplot, no
rcParams change); a lock serialises the drawing because mathtext's parser keeps a shared cache.

Imports only matplotlib and the standard library; nothing is built at import time.
"""

from __future__ import annotations

import io
import re
import threading
from functools import lru_cache

MAX_LATEX_CHARS = 3000  # longer is not a formula a card quotes; mathtext gets slow on it
MAX_ROWS = 24
MAX_BRACE_DEPTH = 40  # mathtext's parser recurses per group
MAX_PIXELS = 6000  # per side: a wider or taller image is no use in a message
FONTSET = "cm"  # Computer Modern, the look readers know from papers

_LOCK = threading.Lock()

_ROW_ENVS = (
    "aligned", "align", "align*", "alignat", "alignat*", "alignedat", "flalign", "flalign*", "eqnarray",
    "eqnarray*", "gathered", "gather", "gather*", "split", "multline", "multline*", "equation",
    "equation*", "displaymath", "math",
)  # fmt: skip
_ROW_ENV = re.compile(r"\\(begin|end)\s*\{(" + "|".join(re.escape(e) for e in _ROW_ENVS) + r")\}")
_ANY_ENV = re.compile(r"\\begin\s*\{")
_ALIGNAT_ARG = re.compile(r"(\\begin\s*\{(?:alignat\*?|alignedat)\})\s*\{\d+\}")

# commands dropped with their one braced argument
_DROP_WITH_ARG = ("label", "tag*", "tag", "refstepcounter", "color")
# commands dropped alone (spacing or size hints that do not change the meaning)
_DROP_ALONE = re.compile(
    r"\\(?:nonumber|notag|displaystyle|textstyle|scriptstyle|scriptscriptstyle|limits|nolimits|xspace"
    r"|allowbreak|nobreak|big|Big|bigg|Bigg)(?:[lrm])?(?![A-Za-z])"
)
_SPACE_SKIP = re.compile(r"\\(?:hskip|kern|mkern|mskip)\s*-?[\d.]+\s*(?:pt|em|ex|cm|mm|in|mu|bp)?")
_BREAK = re.compile(r"\\\\(?:\*)?(?:\s*\[[^\]]*\])?")

# one-for-one renames: LaTeX (amsmath, mathtools, bm, physics) -> what mathtext reads, same meaning
_RENAME = {
    "bm": "boldsymbol",
    "pmb": "boldsymbol",
    "mathbbm": "mathbb",
    "mathds": "mathbb",
    "tfrac": "frac",
    "cfrac": "dfrac",
    "le": "leq",
    "ge": "geq",
    "leqslant": "leq",
    "geqslant": "geq",
    "implies": "Longrightarrow",
    "impliedby": "Longleftarrow",
    "iff": "Longleftrightarrow",
    "land": "wedge",
    "lor": "vee",
    "lnot": "neg",
    "lVert": "Vert",
    "rVert": "Vert",
    "lvert": "vert",
    "rvert": "vert",
    "coloneqq": "coloneq",
    "stackrel": "overset",
    "textrm": "text",
    "textnormal": "text",
    "textup": "text",
    "mbox": "text",
    "hbox": "text",
    "textbf": "mathbf",
    "textit": "mathit",
    "emph": "mathit",
    "textsf": "mathsf",
    "texttt": "mathtt",
    "mathnormal": "mathit",
    "ensuremath": "",
    "boxed": "",
    "mathop": "",
    "mathrel": "",
    "mathord": "",
    "mathbin": "",
}
_SYMBOLS = {
    "vcentcolon": ":",
    "eqqcolon": r"\eqcolon",
    "dots": r"\ldots",
    "dotsc": r"\ldots",
    "dotsb": r"\cdots",
    "dotsm": r"\cdots",
    "dotsi": r"\cdots",
    "argmin": r"\operatorname{arg\,min}",
    "argmax": r"\operatorname{arg\,max}",
    "qquad": r"\quad\quad",
}
_CS = re.compile(r"\\([A-Za-z]+\*?)")
_INTERNAL = re.compile(r"\\edef\s*\{\}|\\[A-Za-z]*@[A-Za-z@]*\s*(?:\{[^{}]*\})?")  # `\ltx@label{..}`
# commands whose arguments mathtext wants braced (LaTeX also reads one bare token: `\frac12`, `\mathbb E`)
_ONE_ARG = (
    "mathbb", "mathcal", "mathbf", "mathrm", "mathit", "mathsf", "mathtt", "mathfrak", "mathscr",
    "boldsymbol", "overline", "underline", "hat", "widehat", "tilde", "widetilde", "bar", "vec", "dot",
    "ddot", "check", "breve", "acute", "grave",
)  # fmt: skip
_TWO_ARGS = ("frac", "dfrac", "tfrac", "binom", "overset", "underset", "stackrel")
_GLUED = re.compile(r"\\(lVert|rVert|lvert|rvert)(?=[A-Za-z])")  # `\lVertx`: a macro glued to its argument


def _group(s: str, i: int) -> tuple[str, int] | None:
    """The braced group starting at or after `i` (spaces skipped): (its inside, index after it)."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        return None
    if s[i] != "{":
        m = _CS.match(s, i)
        if m:
            return m.group(0), m.end()
        return s[i], i + 1
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{" and (j == 0 or s[j - 1] != "\\"):
            depth += 1
        elif s[j] == "}" and (j == 0 or s[j - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return s[i + 1 : j], j + 1
    return None


def _rewrite_calls(s: str, name: str, arity: int, build) -> str:
    """Replace every `\\name{a}{b}...` with `build(args)`; a call with missing arguments is left."""
    pat = re.compile(r"\\" + re.escape(name) + (r"(?![A-Za-z*])" if not name.endswith("*") else ""))
    out, i = [], 0
    for m in pat.finditer(s):
        if m.start() < i:
            continue
        j, args = m.end(), []
        for _ in range(arity):
            g = _group(s, j)
            if g is None:
                break
            args.append(g[0])
            j = g[1]
        if len(args) < arity:
            continue
        out.append(s[i : m.start()])
        out.append(build(args))
        i = j
    out.append(s[i:])
    return "".join(out)


def _underbraces(s: str) -> str:
    """`\\underbrace{A}_{B}` -> `\\underset{B}{A}` (the note under the part); without a note, just `{A}`."""
    out, i = [], 0
    for m in re.finditer(r"\\underbrace(?![A-Za-z])", s):
        if m.start() < i:
            continue
        a = _group(s, m.end())
        if a is None:
            continue
        j = a[1]
        while j < len(s) and s[j] == " ":
            j += 1
        b = _group(s, j + 1) if j < len(s) and s[j] == "_" else None
        out.append(s[i : m.start()])
        out.append(rf"\underset{{{b[0]}}}{{{a[0]}}}" if b else "{" + a[0] + "}")
        i = b[1] if b else a[1]
    out.append(s[i:])
    return "".join(out)


def _operator(args: list[str]) -> str:
    """An operator name mathtext reads (letters and spacing: `arg\\,min`), else the argument as a group."""
    name = args[0]
    plain = re.fullmatch(r"(?:[A-Za-z\s]|\\[,;:! ])+", name)
    return rf"\operatorname{{{name}}}" if plain else "{" + name + "}"


def _display_fractions(s: str) -> str:
    """`\\frac` outside any group -> `\\dfrac`: a display formula's own fractions are full size, as in
    LaTeX; those in scripts and nested groups stay small."""
    out, depth, i = [], 0, 0
    for m in re.finditer(r"(?<!\\)[{}]|\\frac(?![A-Za-z])", s):
        out.append(s[i : m.start()])
        tok = m.group(0)
        if tok == "{":
            depth += 1
        elif tok == "}":
            depth -= 1
        out.append(r"\dfrac" if tok == r"\frac" and depth == 0 else tok)
        i = m.end()
    out.append(s[i:])
    return "".join(out)


def _brace_depth(s: str) -> int:
    depth = deepest = 0
    for m in re.finditer(r"(?<!\\)[{}]", s):
        depth += 1 if m.group(0) == "{" else -1
        deepest = max(deepest, depth)
    return deepest


def _fix_left_right(row: str) -> str:
    """A row whose `\\left`/`\\right` do not pair (split over rows) keeps the delimiters, plain."""
    lefts = len(re.findall(r"\\left(?![A-Za-z])", row))
    rights = len(re.findall(r"\\right(?![A-Za-z])", row))
    if lefts == rights:
        return row
    row = re.sub(r"\\(?:left|right)\s*\.", "", row)
    return re.sub(r"\\(?:left|right)(?![A-Za-z])\s*", "", row)


def normalize(latex: str) -> list[str] | None:
    """`latex` as the rows mathtext can draw (each without `$`), or None when it has a construct that
    cannot be rewritten without changing the meaning (cases, matrices, arrays, a bare `$`)."""
    s = latex.strip()
    if not s or len(s) > MAX_LATEX_CHARS:
        return None
    s = _drop_layout(s)
    if _ANY_ENV.search(s) or re.search(r"\\(?:end|cancel|bcancel|xcancel|sout)(?![A-Za-z])", s):
        return None  # cases, matrices, arrays, tables: rows and columns mathtext cannot lay out
    s = _rewrite_commands(s)
    s = s.replace("\\&", "\x00")  # an escaped ampersand is a symbol, not an alignment mark
    if "$" in s.replace(r"\$", ""):
        return None
    if _brace_depth(s) > MAX_BRACE_DEPTH:
        return None
    rows = _rows(s)
    if not rows or len(rows) > MAX_ROWS:
        return None
    return rows


def _drop_layout(s: str) -> str:
    """`s` on one line, without labels, tags, colours, internal `@` commands and the `\\begin`/`\\end` of
    row environments (aligned, gathered, ...)."""
    s = re.sub(r"\s+", " ", s)
    s = s.replace(r"\operatorname *", r"\operatorname*")
    s = _GLUED.sub(lambda m: f"\\{m.group(1)} ", s)
    for name in _DROP_WITH_ARG:
        s = _rewrite_calls(s, name, 1, lambda a: "")
    s = _rewrite_calls(s, "theequation", 0, lambda a: "")
    s = _ALIGNAT_ARG.sub(r"\1", s)
    s = _INTERNAL.sub(" ", s)
    return _ROW_ENV.sub(" ", s)


def _rewrite_commands(s: str) -> str:
    """`s` with the commands mathtext lacks rewritten into ones it has (braced arguments, \\quad, \\frac,
    \\overset, renamed and Unicode symbols)."""
    s = _DROP_ALONE.sub(" ", s)
    for name in _ONE_ARG:
        s = _rewrite_calls(s, name, 1, lambda a, name=name: f"\\{name}{{{a[0]}}}")
    s = re.sub(r"\\sqrt\s*(?![\s\[{])(\\[A-Za-z]+|.)", r"\\sqrt{\1}", s)  # `\sqrt[3]{x}` keeps its index
    for name in _TWO_ARGS:
        s = _rewrite_calls(s, name, 2, lambda a, name=name: f"\\{name}{{{a[0]}}}{{{a[1]}}}")
    s = _SPACE_SKIP.sub(r"\\quad ", s)
    s = _rewrite_calls(s, "hspace*", 1, lambda a: r"\quad ")
    s = _rewrite_calls(s, "hspace", 1, lambda a: r"\quad ")
    s = _rewrite_calls(s, "xrightarrow", 1, lambda a: rf"\overset{{{a[0]}}}{{\longrightarrow}}")
    s = _rewrite_calls(s, "xleftarrow", 1, lambda a: rf"\overset{{{a[0]}}}{{\longleftarrow}}")
    s = _underbraces(s)
    s = _rewrite_calls(s, "overbrace", 1, lambda a: "{" + a[0] + "}")
    s = _rewrite_calls(s, "dv", 2, lambda a: rf"\frac{{\mathrm{{d}} {a[0]}}}{{\mathrm{{d}} {a[1]}}}")
    s = _rewrite_calls(s, "pdv", 2, lambda a: rf"\frac{{\partial {a[0]}}}{{\partial {a[1]}}}")
    # \operatorname*{arg\,min} -> \operatorname{arg\,min}; \operatorname*{\mathbb{E}} -> {\mathbb{E}}
    s = _rewrite_calls(s, "operatorname*", 1, _operator)
    s = _rewrite_calls(s, "operatorname", 1, _operator)
    s = _rewrite_calls(s, "textcolor", 2, lambda a: "{" + a[1] + "}")
    s = re.sub(r"(?:\\vcentcolon|\\colon|:)\s*=", r"\\coloneq ", s)  # `:=` as one relation, no gap
    s = re.sub(r"=\s*(?:\\vcentcolon|:)(?![A-Za-z])", r"\\eqcolon ", s)
    s = _display_fractions(s)
    return _CS.sub(_rename, s)


def _rename(m: re.Match[str]) -> str:
    """A control sequence as mathtext knows it: a Unicode symbol, a renamed command, or unstarred."""
    name = m.group(1)
    if name in _SYMBOLS:
        return _SYMBOLS[name] + " "
    if name in _RENAME:
        new = _RENAME[name]
        return f"\\{new}" if new else ""
    if name.endswith("*"):  # a starred command mathtext does not know: try it unstarred
        return "\\" + name[:-1]
    return m.group(0)


def _rows(s: str) -> list[str]:
    """The non-empty rows of `s` (split at `\\\\`), alignment marks turned into spaces and a continued row
    (`& = ...`) indented under the first."""
    rows: list[str] = []
    for raw in _BREAK.split(s):
        left, amp, _ = raw.partition("&")
        row = raw.replace("&&", r"\quad\quad ").replace("&", " ")
        if amp and not left.strip() and rows:  # a continued row (`& = ...`): indent it under the first
            row = r"\quad\quad " + row
        row = _fix_left_right(row.replace("\x00", r"\&")).strip()
        if row:
            rows.append(row)
    return rows


def _glyphs_available(text: str) -> bool:
    """Every non-ASCII character has a glyph in a font mathtext can fall back to (else a dummy box)."""
    wide = {c for c in text if ord(c) > 127}
    if not wide:
        return True
    from matplotlib import font_manager

    fonts = []
    for family in ("DejaVu Sans", "STIXGeneral", "cmr10", "cmsy10", "cmmi10"):
        try:
            path = font_manager.findfont(
                font_manager.FontProperties(family=family), fallback_to_default=False
            )
            fonts.append(font_manager.get_font(path))
        except Exception:  # a font missing from this matplotlib: check the others
            continue
    return all(any(f.get_char_index(ord(c)) for f in fonts) for c in wide)


def _draw(rows: list[str], dpi: int, fontsize: int) -> bytes:
    """The rows one below the other, left-aligned, on a figure exactly their size plus a small margin
    (mathtext measures each row first, as `matplotlib.mathtext.math_to_image` does)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.mathtext import MathTextParser

    prop = FontProperties(size=fontsize, math_fontfamily=FONTSET)
    parser = MathTextParser("path")
    sizes = [parser.parse(f"${r}$", dpi=72, prop=prop)[:3] for r in rows]  # (width, height, depth) in pt
    pad, gap = 0.2 * fontsize, 0.45 * fontsize
    width = max(w for w, _, _ in sizes) + 2 * pad
    height = sum(h for _, h, _ in sizes) + gap * (len(rows) - 1) + 2 * pad
    if max(width, height) * dpi / 72 > MAX_PIXELS:
        raise ValueError("the formula is too large to draw")
    fig = Figure(figsize=(width / 72, height / 72))
    FigureCanvasAgg(fig)
    top = pad
    for row, (_, h, d) in zip(rows, sizes, strict=True):
        baseline = top + h - d  # from the top of the figure, in points
        fig.text(
            pad / width, 1 - baseline / height, f"${row}$", fontproperties=prop, usetex=False,
            color="#111111", ha="left", va="baseline",
        )  # fmt: skip
        top += h + gap
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


@lru_cache(maxsize=512)
def _render(latex: str, dpi: int, fontsize: int) -> bytes | None:
    rows = normalize(latex)
    if rows is None:
        return None
    try:
        with _LOCK:
            if not _glyphs_available("".join(rows)):
                return None
            png = _draw(rows, dpi, fontsize)
    except Exception:  # mathtext's parse errors (ValueError), recursion on deep nesting, font trouble
        return None
    return png if png.startswith(b"\x89PNG\r\n\x1a\n") else None


def latex_to_png(latex: str, *, dpi: int = 150, fontsize: int = 14) -> bytes | None:
    """The formula `latex` (no `$` delimiters) as PNG bytes on white, tightly cropped; None when mathtext
    cannot draw it faithfully. Cached by (latex, dpi, fontsize); never raises."""
    if not isinstance(latex, str) or not 20 <= dpi <= 600 or not 4 <= fontsize <= 72:
        return None
    return _render(latex, dpi, fontsize)


def png_size(png: bytes) -> tuple[int, int] | None:
    """(width, height) in pixels from a PNG's IHDR chunk, or None when `png` is not a PNG."""
    if len(png) < 24 or not png.startswith(b"\x89PNG\r\n\x1a\n") or png[12:16] != b"IHDR":
        return None
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
