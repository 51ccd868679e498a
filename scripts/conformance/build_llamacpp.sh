#!/usr/bin/env bash
# Build llama.cpp's own llama-server from source, once per machine and version.
#
# Only PyPI and a C++ toolchain are needed: the llama-cpp-python sdist vendors
# llama.cpp under vendor/llama.cpp, so CI without other network access can
# build the real server. The result is cached under
#   ${TTC_CONFORMANCE_CACHE:-$HOME/.cache/ttc/conformance}/llamacpp/<version>/
# and the path of the binary is printed on stdout (everything else on stderr).
#
# Environment: LLAMACPP_PY_VERSION (default 0.3.36), BUILD_JOBS (default 2),
# PYTHON (default python3, needs pip).
set -euo pipefail

version="${LLAMACPP_PY_VERSION:-0.3.36}"
jobs="${BUILD_JOBS:-2}"
python="${PYTHON:-python3}"
cache="${TTC_CONFORMANCE_CACHE:-$HOME/.cache/ttc/conformance}"
root="$cache/llamacpp/$version"
server="$root/build/bin/llama-server"

if [[ -x "$server" && -f "$root/.built" ]]; then
    echo "$server"
    exit 0
fi

for tool in cmake c++ make; do
    if ! command -v "$tool" >/dev/null; then
        echo "build_llamacpp: '$tool' is missing (apt-get install cmake g++ make)" >&2
        exit 1
    fi
done

mkdir -p "$root"
# One build at a time per cache root (parallel CI jobs on one machine).
exec 9>"$root/.lock"
flock 9
if [[ -x "$server" && -f "$root/.built" ]]; then
    echo "$server"
    exit 0
fi

src="$root/src"
if [[ ! -d "$src/vendor/llama.cpp" ]]; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    echo "build_llamacpp: fetching llama-cpp-python==$version sdist" >&2
    # Only llama-cpp-python from source: building its build tools from sdists too
    # (--no-binary :all:) recurses through setuptools and friends for minutes.
    "$python" -m pip download --quiet --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$version" -d "$tmp" >&2
    archive="$(ls "$tmp"/llama_cpp_python-*.tar.gz)"
    rm -rf "$src"
    mkdir -p "$src"
    tar -xzf "$archive" -C "$src" --strip-components=1
fi

llama="$src/vendor/llama.cpp"
echo "build_llamacpp: configuring $llama" >&2
cmake -S "$llama" -B "$root/build" \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DCMAKE_BUILD_TYPE=Release >&2
echo "build_llamacpp: building llama-server with -j$jobs" >&2
cmake --build "$root/build" --target llama-server -j"$jobs" >&2
touch "$root/.built"
echo "$server"
