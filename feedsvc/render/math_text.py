"""A LaTeX formula as readable Unicode text, for channels that cannot show images inline (Telegram).

`latex_to_unicode(r"\\sum_{k=0}^{K-1}\\theta_k \\Lambda^k")` gives `∑ₖ₌₀ᴷ⁻¹θₖΛᵏ`: Greek letters and symbols
become their characters (pylatexenc's table, plus a few of ours), sub- and superscripts become Unicode
sub/superscript characters when every character of them has one (`x_{s,i}` -> `x_(s,i)` otherwise),
`\\frac{a}{b}` -> `a/b` (compound parts in parentheses), `\\mathbb{E}` -> `𝔼`, `\\|x\\|` -> `‖x‖`, accents
combine (`\\hat{y}` -> `ŷ`), rows of `aligned` become lines. It never raises: LaTeX that does not parse
comes back as its source. Pure: no I/O. Imports only pylatexenc and the standard library.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from functools import lru_cache

from pylatexenc.latex2text import get_default_latex_context_db as _text_db
from pylatexenc.latexwalker import (
    LatexCharsNode,
    LatexCommentNode,
    LatexEnvironmentNode,
    LatexGroupNode,
    LatexMacroNode,
    LatexMathNode,
    LatexSpecialsNode,
    LatexWalker,
    get_default_latex_context_db,
)
from pylatexenc.macrospec import MacroSpec


def _words(names: str) -> frozenset[str]:
    return frozenset(names.split())


MAX_INPUT = 20_000  # longer input comes back as its source: no formula on a card is this long

# fmt: off
SUBSCRIPTS = dict(zip("0123456789+-−=()aehijklmnoprstuvxβγρφχ",
                      "₀₁₂₃₄₅₆₇₈₉₊₋₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓᵦᵧᵨᵩᵪ", strict=True))
SUPERSCRIPTS = dict(zip("0123456789+-−=()abcdefghijklmnoprstuvwxyz"
                        "ABDEGHIJKLMNOPRTUVWαβγδεθιφχ⊤⊺′*",
                        "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁻⁼⁽⁾ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻ"
                        "ᴬᴮᴰᴱᴳᴴᴵᴶᴷᴸᴹᴺᴼᴾᴿᵀᵁⱽᵂᵅᵝᵞᵟᵋᶿᶥᵠᵡᵀᵀ′*", strict=True))

# Zero-argument macros pylatexenc's table lacks or renders in a way we do not want.
SYMBOLS = {
    "|": "‖", "Vert": "‖", "lVert": "‖", "rVert": "‖", "vert": "|", "lvert": "|", "rvert": "|", "mid": "∣",
    "{": "{", "}": "}", "lbrace": "{", "rbrace": "}", "lbrack": "[", "rbrack": "]", "langle": "⟨",
    "rangle": "⟩", "lceil": "⌈", "rceil": "⌉", "lfloor": "⌊", "rfloor": "⌋", "backslash": "∖",
    "coloneq": "≔", "coloneqq": "≔", "eqqcolon": "≕", "vcentcolon": ":", "colon": ":", "defeq": "≝",
    "triangleq": "≜", "eqdef": "≝", "iff": "⟺", "implies": "⟹", "impliedby": "⟸", "prime": "′",
    "star": "⋆", "top": "⊤", "bot": "⊥", "dots": "…", "dotsc": "…", "dotsb": "⋯", "hdots": "…",
    "epsilon": "ϵ", "varepsilon": "ε", "emptyset": "∅", "varnothing": "∅", "ell": "ℓ",
    "independent": "⫫", "perp": "⊥", "land": "∧", "lor": "∨", "lnot": "¬",
    "%": "%", "$": "$", "&": "&", "#": "#", "_": "_",
}
SPACES = {",": " ", ";": " ", ":": " ", ">": " ", " ": " ", "quad": "  ", "qquad": "   ", "enspace": " ",
          "thinspace": " ", "medspace": " ", "thickspace": " ", "!": "", "negthinspace": "", "/": ""}
WORDS = _words(  # operator names, written as words
    "log ln lg exp sin cos tan sec csc cot sinh cosh tanh arcsin arccos arctan max min sup inf lim liminf "
    "limsup arg argmax argmin det dim ker deg gcd hom Pr mod bmod tr Tr diag rank sign sgn softmax KL Var "
    "Cov var cov erf poly supp vol"
)
DROP = _words(  # macros whose output is nothing (layout, labels, sizes, old font switches)
    "label tag nonumber notag displaystyle textstyle scriptstyle scriptscriptstyle limits nolimits left "
    "right middle big Big bigg Bigg bigl bigr Bigl Bigr biggl biggr Biggl Biggr bigm Bigm phantom hphantom "
    "vphantom vspace allowbreak nobreak relax protect strut mathstrut color boldmath unboldmath centering "
    "small footnotesize normalsize large Large newline rm bf it sf tt cal mit em sl sc refstepcounter "
    "stepcounter theequation hfill hfil medskip smallskip bigskip noindent customtag customlabel"
)
SKIPS = {"hskip", "vskip", "kern", "mkern", "mskip", "hspace"}  # followed by a length we drop too
CONTENT = _words(  # one-argument macros shown as their argument
    "mathrm mathit mathbf mathsf mathtt mathnormal boldsymbol bm pmb mathbold text textrm textit textbf "
    "textsf texttt textnormal mbox hbox emph mathop mathrel mathbin mathord mathopen mathclose mathpunct "
    "ensuremath boxed fbox underbrace overbrace textup textmd cancel"
)
TEXT_MACROS = _words("text textrm textit textbf textsf texttt textnormal mbox hbox emph textup textmd")
ACCENTS = {
    "hat": "\u0302", "widehat": "\u0302", "tilde": "\u0303", "widetilde": "\u0303", "bar": "\u0304",
    "overline": "\u0305", "vec": "\u20d7", "overrightarrow": "\u20d7", "dot": "\u0307", "ddot": "\u0308",
    "check": "\u030c", "breve": "\u0306", "acute": "\u0301", "grave": "\u0300", "underline": "\u0332",
    "mathring": "\u030a",
}
ALPHABETS = {  # Unicode names of the mathematical alphabets, then the older letterlike names
    "mathbb": ("MATHEMATICAL DOUBLE-STRUCK", "DOUBLE-STRUCK"),
    "mathcal": ("MATHEMATICAL SCRIPT", "SCRIPT"),
    "mathscr": ("MATHEMATICAL SCRIPT", "SCRIPT"),
    "mathfrak": ("MATHEMATICAL FRAKTUR", "BLACK-LETTER"),
}
FRACTIONS = {"frac", "dfrac", "tfrac", "cfrac", "nicefrac", "sfrac"}
MATRICES = {"matrix": ("[", "]"), "pmatrix": ("(", ")"), "bmatrix": ("[", "]"), "Bmatrix": ("{", "}"),
            "vmatrix": ("|", "|"), "Vmatrix": ("‖", "‖"), "smallmatrix": ("[", "]"), "array": ("[", "]"),
            "cases": ("{ ", ""), "dcases": ("{ ", ""), "rcases": ("", " }")}
_LENGTH = re.compile(r"\s*-?[\d.]+\s*(?:pt|em|ex|mu|cm|mm|in|bp|sp|pc|dd|cc)?"
                     r"(?:\s*(?:plus|minus)\s*-?[\d.]+\s*(?:pt|em|ex|mu|fil+)?)*")
# fmt: on
RELATIONS = set("=≠≤≥<>≈≡≔≕≝≜∈∉⊂⊆⊃⊇∝∼≃≅→←⇒⇐⟹⟸⟺⇔↦≪≫≺≻≼≽⊥∣")
_COMBINING = re.compile(r"^.[\u0300-\u036f\u20d0-\u20ff]*$", re.S)


def latex_to_unicode(latex: str) -> str:
    """Readable Unicode for a LaTeX formula; the LaTeX source itself when it cannot be read."""
    source = str(latex)
    if not source.strip() or len(source) > MAX_INPUT:
        return source.strip()
    body = re.sub(r"(?:\\\\|\s)+$", "", source)  # a row break at the very end draws nothing
    try:
        nodes = LatexWalker(body, latex_context=_walker_context(), tolerant_parsing=False).get_latex_nodes()[
            0
        ]
        text = _Converter().convert(nodes, top=True)
    except Exception:  # pylatexenc's parse errors, recursion on absurd nesting: the source is still readable
        return source.strip()
    lines = [re.sub(r"\s+([,;])", r"\1", re.sub(r"[ \t]+", " ", line)).strip() for line in text.split("\n")]
    out = unicodedata.normalize("NFC", "\n".join(line for line in lines if line))  # y + ^ -> ŷ
    return out or source.strip()


@lru_cache(maxsize=1)
def _walker_context():  # -> LatexContextDb; built on first use, not at import
    """pylatexenc's parsing context, told the arguments of the macros it does not know."""
    one = (
        "bm boldsymbol pmb mathop mathrel mathbin mathord mathscr boxed underbrace overbrace mathring phantom"
    )
    two = "dfrac tfrac cfrac nicefrac sfrac binom dbinom tbinom underset overset stackrel"
    more = ("hphantom", "vphantom", "refstepcounter", "customtag", "customlabel", "cancel")
    specs = [MacroSpec(name, "{") for name in (*one.split(), *more)]
    specs += [MacroSpec(name, "{{") for name in two.split()]
    specs += [MacroSpec("operatorname", "*{"), MacroSpec("tag", "*{"), MacroSpec("xleftarrow", "[{")]
    db = get_default_latex_context_db()
    db.add_context_category("feedsvc-math", macros=specs, prepend=True)
    return db


@lru_cache(maxsize=1)
def _symbol_table() -> dict[str, str]:
    """pylatexenc's zero-argument text replacements (Greek letters, relations, operators), then ours."""
    table: dict[str, str] = {}
    for spec in _text_db().iter_macro_specs():
        repl = getattr(spec, "simplify_repl", None)
        if isinstance(repl, str) and "%" not in repl:
            table[spec.macroname] = repl
    table.update(SYMBOLS)
    return table


def _letter(alphabet: str, ch: str) -> str:
    names = ALPHABETS[alphabet]
    if ch.isdigit():
        kind = f"DIGIT {unicodedata.name(ch).split()[-1]}"
    elif "A" <= ch <= "Z":
        kind = f"CAPITAL {ch}"
    elif "a" <= ch <= "z":
        kind = f"SMALL {ch.upper()}"
    else:
        return ch
    for prefix in names:
        try:
            return unicodedata.lookup(f"{prefix} {kind}")
        except KeyError:
            continue
    return ch


def _graphemes(s: str) -> int:
    return sum(1 for ch in s if not unicodedata.combining(ch))


def _atom(s: str) -> bool:
    """One symbol (with its accents and scripts) or a plain number: needs no parentheses."""
    core = s.rstrip("".join(SUBSCRIPTS.values()) + "".join(SUPERSCRIPTS.values()) + "′")
    return bool(re.fullmatch(r"\d+(?:\.\d+)?", s)) or (bool(core) and bool(_COMBINING.match(core)))


def _script(kind: str, s: str) -> str:
    s = s.strip()
    if not s:
        return ""
    table = SUBSCRIPTS if kind == "_" else SUPERSCRIPTS
    if all(ch in table for ch in s):
        return "".join(table[ch] for ch in s)
    if kind == "^" and s in ("′", "′′", "′′′", "*", "⋆", "∗"):
        return s
    if _graphemes(s) == 1:
        return kind + s
    return f"{kind}({s})"


class _Out:
    """Output pieces; a word (log, max, diag) is kept apart from a letter or word next to it."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.last_word = False

    def add(self, s: str, *, word: bool = False) -> None:
        if not s:
            return
        prev = self.pieces[-1] if self.pieces else ""
        if prev and prev[-1].isalnum() and s[0].isalnum() and (word or self.last_word):
            self.pieces.append(" ")
        self.pieces.append(s)
        self.last_word = word

    def text(self) -> str:
        return "".join(self.pieces)

    def ends_with(self, s: str) -> bool:
        return "".join(self.pieces[-3:]).rstrip().endswith(s)


class _Converter:
    def convert(
        self,
        nodes: Sequence[object] | None,
        *,
        text_mode: bool = False,
        rows: str = "\n",
        cells: str = " ",
        top: bool = False,
    ) -> str:
        """Nodes as text. `top`: the formula's own level (not a script, fraction or argument), where
        relations get a space on each side."""
        out = _Out()
        pending: str | None = None  # "_" or "^" waiting for its argument
        skip: re.Pattern[str] | None = None  # what to drop from the start of the next characters
        for node in nodes or ():
            if isinstance(node, LatexCharsNode):
                chars = node.chars
                if skip is not None:
                    found = skip.match(chars)
                    chars = chars[found.end() :] if found else chars
                    skip = None
                for i, ch in enumerate(chars):
                    if pending is not None:
                        if ch.isspace():
                            continue
                        out.add(_script(pending, self._char(ch, text_mode)), word=out.last_word)
                        pending = None
                    elif ch in "_^" and not text_mode:
                        pending = ch
                    elif ch.isspace():
                        out.add(" ")
                    elif top and not text_mode and ch == ":" and chars[i + 1 : i + 2] == "=":
                        out.add(" :")
                    elif top and not text_mode and ch in RELATIONS:
                        out.add(f"{ch} " if out.ends_with(":") else f" {ch} ")
                    else:
                        out.add(self._char(ch, text_mode))
                continue
            skip = None
            if isinstance(node, LatexMacroNode) and node.macroname in ("left", "right"):
                skip = re.compile(r"\s*\.")  # \left. and \right. draw nothing
            if isinstance(node, LatexMacroNode) and node.macroname in SKIPS and not _has_args(node):
                skip = _LENGTH
            if isinstance(node, LatexMacroNode) and node.macroname == "\\":
                piece, word = rows, False
            elif isinstance(node, LatexSpecialsNode) and node.specials_chars == "&":
                piece, word = cells, False
            else:
                piece, word = self._node(node, text_mode, top=top and pending is None)
                if top and pending is None and piece in RELATIONS:
                    piece = f" {piece} "
            if pending is not None:
                if piece.strip():
                    out.add(_script(pending, piece), word=out.last_word)
                    pending = None
            else:
                out.add(piece, word=word)
        if pending is not None:
            out.add(pending)
        return out.text()

    @staticmethod
    def _char(ch: str, text_mode: bool) -> str:
        if text_mode:
            return ch
        return {"-": "−", "'": "′", "*": "*"}.get(ch, ch)

    def _arg(self, node: LatexMacroNode, i: int, *, text_mode: bool = False) -> str:
        args = node.nodeargd.argnlist if node.nodeargd is not None else []
        if i >= len(args) or args[i] is None:
            return ""
        arg = args[i]
        inner = arg.nodelist if isinstance(arg, LatexGroupNode) else [arg]
        text = self.convert(inner, text_mode=text_mode)
        return text if text_mode else text.strip()

    def _node(self, node: object, text_mode: bool, *, top: bool = False) -> tuple[str, bool]:
        """A node as (text, is a word)."""
        if isinstance(node, LatexGroupNode):
            return self.convert(node.nodelist, text_mode=text_mode, top=top), False
        if isinstance(node, LatexMathNode):
            return self.convert(node.nodelist), False
        if isinstance(node, LatexCommentNode):
            return "", False
        if isinstance(node, LatexSpecialsNode):
            return {"~": " ", "--": "–", "---": "—", "``": "“", "''": "”"}.get(
                node.specials_chars, node.specials_chars
            ), False
        if isinstance(node, LatexEnvironmentNode):
            return self._environment(node, top), False
        if isinstance(node, LatexMacroNode):
            return self._macro(node, text_mode)
        return "", False

    def _environment(self, node: LatexEnvironmentNode, top: bool) -> str:
        name = node.environmentname
        if name in MATRICES:
            left, right = MATRICES[name]
            body = self.convert(node.nodelist, rows="; ", cells=", " if "cases" not in name else "  ")
            return f"{left}{body.strip().rstrip(';').strip()}{right}"
        return "\n" + self.convert(node.nodelist, rows="\n", cells=" ", top=top) + "\n"

    def _macro(self, node: LatexMacroNode, text_mode: bool) -> tuple[str, bool]:
        name = node.macroname
        handler = _MACROS.get(name)
        if handler is not None:
            return handler(self, node)
        if name in DROP or name in SKIPS:
            return "", False
        if name in SPACES:
            return SPACES[name], False
        if name in CONTENT:
            return self._arg(node, 0, text_mode=name in TEXT_MACROS), False
        if name in ALPHABETS:
            return "".join(_letter(name, ch) for ch in self._arg(node, 0)), False
        if name in ACCENTS:
            inner = self._arg(node, 0)
            if _COMBINING.match(inner):
                return inner + ACCENTS[name], False
            return f"{name}({inner})" if inner else "", True
        if name in FRACTIONS:
            top, bottom = self._arg(node, 0), self._arg(node, 1)
            wrap = lambda s: s if _atom(s) else f"({s})"  # noqa: E731
            return f"{wrap(top)}/{wrap(bottom)}", False
        if name in WORDS:
            return name.removeprefix("b") if name == "bmod" else name, True
        table = _symbol_table()
        if name in table:
            return table[name], table[name].isalpha() and len(table[name]) > 1
        return (name, True) if name.isalpha() else (name, False)  # unknown macro: its name reads best


def _has_args(node: LatexMacroNode) -> bool:
    return node.nodeargd is not None and any(a is not None for a in node.nodeargd.argnlist)


def _sqrt(c: _Converter, node: LatexMacroNode) -> tuple[str, bool]:
    index, body = c._arg(node, 0), c._arg(node, 1)
    root = {"": "√", "2": "√", "3": "∛", "4": "∜"}.get(index) or (_script("^", index) + "√")
    return root + (body if _atom(body) else f"({body})"), False


def _operatorname(c: _Converter, node: LatexMacroNode) -> tuple[str, bool]:
    return c._arg(node, 1, text_mode=True), True


def _binom(c: _Converter, node: LatexMacroNode) -> tuple[str, bool]:
    return f"C({c._arg(node, 0)}, {c._arg(node, 1)})", False


def _arrow(c: _Converter, node: LatexMacroNode) -> tuple[str, bool]:
    arrow = "→" if node.macroname == "xrightarrow" else "←"
    below, above = c._arg(node, 0), c._arg(node, 1)
    return arrow + _script("^", above) + _script("_", below), False


def _stacked(c: _Converter, node: LatexMacroNode) -> tuple[str, bool]:
    mark, base = c._arg(node, 0), c._arg(node, 1)
    return base + _script("_" if node.macroname == "underset" else "^", mark), False


def _not(c: _Converter, node: LatexMacroNode) -> tuple[str, bool]:
    inner = c._arg(node, 0)
    negated = {"=": "≠", "∈": "∉", "⊂": "⊄", "⊆": "⊈", "≤": "≰", "≥": "≱", "∼": "≁", "≡": "≢", "|": "∤"}
    return negated.get(inner, inner + "\u0338" if inner else ""), False


def _textcolor(c: _Converter, node: LatexMacroNode) -> tuple[str, bool]:
    return c._arg(node, 2), False


_MACROS: dict[str, Callable[[_Converter, LatexMacroNode], tuple[str, bool]]] = {
    "sqrt": _sqrt,
    "operatorname": _operatorname,
    "binom": _binom,
    "dbinom": _binom,
    "tbinom": _binom,
    "xrightarrow": _arrow,
    "xleftarrow": _arrow,
    "underset": _stacked,
    "overset": _stacked,
    "stackrel": _stacked,
    "not": _not,
    "textcolor": _textcolor,
}
