"""Run llama.cpp's vendored ``convert_hf_to_gguf.py`` on a locally trained tokenizer.

The converter knows BPE tokenizers by a hash of how they split a fixed text, and refuses
any it has not seen ("BPE pre-tokenizer was not recognized"), which every tokenizer
trained here is. The tiny models' tokenizer is a GPT-2 style byte-level BPE (the GPT-2
split pattern), so answering the converter's ``get_vocab_base_pre`` with ``"gpt-2"`` is
the truth, not a workaround. The vendored code is patched in memory only.

    python convert_gguf.py LLAMA_CPP_DIR HF_MODEL_DIR OUT.gguf
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def main() -> None:
    llama, model, out = (Path(a) for a in sys.argv[1:4])
    sys.path[:0] = [str(llama), str(llama / "gguf-py")]
    import conversion.base as base  # the converter's model classes (vendored)

    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"  # type: ignore[method-assign]
    sys.argv = [
        str(llama / "convert_hf_to_gguf.py"),
        str(model),
        "--outfile",
        str(out),
        "--outtype",
        "f32",
    ]
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
