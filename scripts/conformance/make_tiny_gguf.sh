#!/usr/bin/env bash
# A tiny GGUF for llama-server, converted from the conformance suite's random-weight
# generator (tests/conformance/tiny_models.py) with llama.cpp's own converter.
#
#   scripts/conformance/make_tiny_gguf.sh [TEMPLATE]     # qwen25 (default), qwen3, llama3
#
# Prints the .gguf path. Cached under
#   ${TTC_CONFORMANCE_CACHE:-$HOME/.cache/ttc/conformance}/llamacpp/gguf/<key>/
# keyed by the model builder, this script and the llama.cpp version, so it is built once
# per machine. The converter needs torch and transformers: TTC_CONFORMANCE_PYTHON, else
# the vLLM conformance venv when one is on disk, else a small venv made here
# (torch==2.13.0, transformers, safetensors; nothing but PyPI).
set -euo pipefail

template="${1:-qwen25}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
version="${LLAMACPP_PY_VERSION:-0.3.36}"
cache="${TTC_CONFORMANCE_CACHE:-$HOME/.cache/ttc/conformance}"
builder="$repo/tests/conformance/tiny_models.py"

if [[ ! -f "$builder" ]]; then
    echo "make_tiny_gguf: $builder is missing" >&2
    exit 1
fi
key="$(cat "$builder" "$here/convert_gguf.py" "$0" | sha256sum | cut -c1-12)-$version"
out_dir="$cache/llamacpp/gguf/$key"
out="$out_dir/tiny-$template.gguf"
if [[ -s "$out" ]]; then
    echo "$out"
    exit 0
fi

# The vendored converter comes with the llama.cpp source build_llamacpp.sh fetches.
"$here/build_llamacpp.sh" >/dev/null
llama="$cache/llamacpp/$version/src/vendor/llama.cpp"

has_deps() { "$1" -c "import torch, transformers, tokenizers, safetensors" 2>/dev/null; }
python="${TTC_CONFORMANCE_PYTHON:-}"
if [[ -z "$python" ]]; then
    for candidate in "$cache"/venv-*/bin/python "$cache/llamacpp/convert-venv/bin/python"; do
        if [[ -x "$candidate" ]] && has_deps "$candidate"; then
            python="$candidate"
            break
        fi
    done
fi
if [[ -z "$python" ]]; then
    venv="$cache/llamacpp/convert-venv"
    echo "make_tiny_gguf: creating $venv" >&2
    mkdir -p "$cache/llamacpp"
    exec 9>"$cache/llamacpp/.convert-venv.lock"
    flock 9
    if ! has_deps "$venv/bin/python" 2>/dev/null; then
        rm -rf "$venv"
        "${PYTHON:-python3}" -m venv "$venv"
        "$venv/bin/pip" install --quiet torch==2.13.0 transformers tokenizers safetensors \
            numpy sentencepiece protobuf >&2
    fi
    python="$venv/bin/python"
fi

mkdir -p "$out_dir"
work="$(mktemp -d "$out_dir/.work-XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "make_tiny_gguf: building the $template generator with $python" >&2
"$python" "$builder" generator "$work/hf" --template "$template" >&2
"$python" "$here/convert_gguf.py" "$llama" "$work/hf" "$work/tiny.gguf" >&2
mv "$work/tiny.gguf" "$out"  # atomic: a half-written file is never taken for a cached one
echo "$out"
