#!/usr/bin/env bash
# Installs the Debian packages sattn needs that this machine lacks (idempotent;
# run as root, or with sudo available). Prints what it installs.
set -euo pipefail
pkgs=(
  gcc make            # the compiler and build
  g++                 # the CUDA side: nvcc's host compiler, and `make cuda-emu` (kernels on a CPU emulation)
  libdnnl-dev         # oneDNN: sgemm for every matrix product (2x OpenBLAS here, docs/gemm.md)
  libopenblas-dev     # OpenBLAS headers (cblas.h), measured against oneDNN in bench-gemm
  libopenblas0-openmp # OpenBLAS built on OpenMP, so it shares sattn's thread pool
  libcriterion-dev    # the test framework
  bible-kjv           # the default corpus (King James Bible)
  gnuplot-nox         # `sattn report` draws its PNG plots with gnuplot (pngcairo, no X11)
  clang               # `make fuzz`: libFuzzer harnesses of every reader (-fsanitize=fuzzer,address,undefined)
  libclang-rt-14-dev  # libFuzzer and the sanitizer runtimes for clang 14 (only Recommended by clang-14,
                      # so --no-install-recommends would leave -fsanitize=fuzzer unable to link)
  libomp-14-dev       # clang's OpenMP runtime (libomp): the fuzz build compiles the library with -fopenmp
  libjson-c-dev       # json-c: every JSON sattn reads (eval/task JSON, safetensors headers, config.json, the GPT-2 vocabulary), with a depth limit
  openmpi-bin         # mpirun: data-parallel training over several processes or hosts (docs/mpi.md)
  libopenmpi-dev      # OpenMPI headers and mpicc: `make` links MPI when mpicc is there
  python3             # tests/hf_writer.py: the independent safetensors writer in the tests (struct and json only)
)
# nodejs, npm: the GPT-2 vocabulary is an npm package, and its reference encoder runs under
# node in the tests. Only when npm is missing: a node from elsewhere (nodesource) has its own.
command -v npm >/dev/null || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all present"
else
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The GPT-2 tokenizer's vocabulary (data/gpt2/, sha256-checked; docs/tokenizer.md).
bash "$(dirname "$0")/gpt2-vocab.sh"
