"""LaTeX to MathML for the web archive: latex2mathml's output, re-serialised through an allow-list.

The converter copies some LaTeX into attributes (`\\href` becomes an `href`, `\\style` a `style`), so its
XML is parsed and written out again keeping only MathML elements and harmless presentation attributes.
Each formula carries its LaTeX in an `<annotation encoding="application/x-tex">`. A formula the converter
cannot read, or one it passes through with unknown commands left as text, is not shown as broken math:
`to_mathml` returns None and the page shows the LaTeX in `<code>`. Imports nothing from feedsvc.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from functools import lru_cache
from html import escape

from latex2mathml.converter import convert

NS = "{http://www.w3.org/1998/Math/MathML}"
MAX_LATEX = 4000

ELEMENTS = frozenset(
    {
        *(
            "math",
            "semantics",
            "annotation",
            "mrow",
            "mi",
            "mn",
            "mo",
            "ms",
            "mtext",
            "mspace",
            "msub",
            "msup",
        ),
        *("msubsup", "munder", "mover", "munderover", "mfrac", "msqrt", "mroot", "mtable", "mtr", "mtd"),
        *(
            "mlabeledtr",
            "mstyle",
            "mpadded",
            "mphantom",
            "menclose",
            "merror",
            "mmultiscripts",
            "mprescripts",
        ),
        *("none", "maligngroup", "malignmark", "mfenced"),
    }
)
ATTRIBUTES = frozenset(
    {
        *("display", "mathvariant", "stretchy", "fence", "form", "movablelimits", "separator", "largeop"),
        *(
            "symmetric",
            "accent",
            "accentunder",
            "linethickness",
            "lspace",
            "rspace",
            "width",
            "height",
            "depth",
        ),
        *("minsize", "maxsize", "scriptlevel", "displaystyle", "columnalign", "rowalign", "columnspacing"),
        *("rowspacing", "columnlines", "rowlines", "frame", "framespacing", "notation", "open", "close"),
        *("separators", "mathsize", "rowspan", "columnspan", "voffset", "align", "equalrows", "equalcolumns"),
    }
)
COLOUR_ATTRIBUTES = frozenset({"mathcolor", "mathbackground"})
_COLOUR = re.compile(r"#[0-9A-Fa-f]{3,8}|[A-Za-z]{1,20}")
_ATTR_VALUE = re.compile(r"[\w .%#+-]{0,64}")


# environments latex2mathml lacks, written as ones it has (the annotation keeps the paper's own LaTeX)
_ENVIRONMENTS = re.compile(r"\\(begin|end)\{(aligned|gathered)\}")
_SAME_AS = {"aligned": "align*", "gathered": "gather*"}


class Unrenderable(ValueError):
    """The formula cannot be shown as MathML."""


def _attributes(el: ET.Element) -> str:
    out = []
    for name, value in sorted(el.attrib.items()):
        colour = name in COLOUR_ATTRIBUTES and _COLOUR.fullmatch(value)
        if colour or (name in ATTRIBUTES and _ATTR_VALUE.fullmatch(value)):
            out.append(f' {name}="{escape(value)}"')
    return "".join(out)


def _write(el: ET.Element, out: list[str]) -> None:
    tag = el.tag.removeprefix(NS)
    if tag not in ELEMENTS:
        raise Unrenderable(f"unexpected element <{tag}>")
    text = el.text or ""
    if tag in ("mi", "mo", "mtext") and text.startswith("\\") and len(text) > 1:
        raise Unrenderable(f"unknown command {text}")
    out.append(f"<{tag}{_attributes(el)}>{escape(text, quote=False)}")
    for child in el:
        _write(child, out)
        out.append(escape(child.tail or "", quote=False))
    out.append(f"</{tag}>")


@lru_cache(maxsize=4096)
def to_mathml(latex: str, display: bool = True) -> str | None:
    """The formula as a `<math>` element with its LaTeX annotated, or None when it cannot be rendered."""
    source = latex.strip()
    if not source or len(source) > MAX_LATEX:
        return None
    try:
        readable = _ENVIRONMENTS.sub(lambda m: f"\\{m[1]}{{{_SAME_AS[m[2]]}}}", source)
        root = ET.fromstring(convert(readable, display="block" if display else "inline"))
        body: list[str] = []
        for child in root:
            _write(child, body)
    except Exception:  # latex2mathml raises many kinds of errors on LaTeX it cannot read
        return None
    if not body:
        return None
    mode = "block" if display else "inline"
    annotation = f'<annotation encoding="application/x-tex">{escape(source, quote=False)}</annotation>'
    return (
        f'<math xmlns="http://www.w3.org/1998/Math/MathML" display="{mode}">'
        f"<semantics><mrow>{''.join(body)}</mrow>{annotation}</semantics></math>"
    )
