#!/usr/bin/env bash
# Installs every Debian package llmforge needs to build, test and benchmark. Run as root (or with sudo).
#   build:  g++, cmake, nlohmann-json, CLI11          tests: GoogleTest, Debian's Python with NumPy and PyTorch
#   libopenblas0-openmp: the fast BLAS for Debian's PyTorch (without it torch falls back to the slow reference BLAS)
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
  g++ cmake make pkg-config git ca-certificates \
  nlohmann-json3-dev libcli11-dev \
  libgtest-dev libgmock-dev \
  python3 python3-numpy python3-torch libopenblas0-openmp
