# cuda.mk — the CUDA build (issue 5, docs/cuda.md), included at the end of the Makefile.
#   make cuda       build-cuda/sattn (`sattn bench --device cuda`) and build-cuda/cuda-parity,
#                   everything compiled with -DSATTN_CUDA, src/cuda/*.cu by nvcc, -lcudart
#   make cuda-emu   build-emu/cuda-parity with the kernels compiled by g++ against a CPU
#                   emulation of the CUDA subset they use (src/cuda/emu), then runs it: a
#                   logic check of the kernels on a machine without a GPU
#   make cuda-parity  make cuda, then run the parity tests on the GPU (exit 77: no GPU)
#   make cuda-portable  build-cuda-portable/: the same, runnable without oneDNN/OpenBLAS
#                   (what scripts/gpu-check.sh falls back to on the device machine)
# The normal build never needs nvcc: src/cuda/cuda_stub.c gives `sattn bench --device cuda`
# its "built without CUDA" error there.
NVCC ?= $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
# sm_90 code for the H100/H200 plus compute_90 PTX that newer GPUs JIT-compile
CUDA_ARCH ?= -gencode arch=compute_90,code=[sm_90,compute_90]
NVCCFLAGS ?= -std=c++17 -O3 $(CUDA_ARCH) -Xcompiler -Wall,-Wextra,-Wno-unused-parameter
CXX ?= g++
CUSRC := $(wildcard src/cuda/*.cu)
# Every header a .cu file may include, directly or not: an edit to any of them rebuilds the
# CUDA objects (nvcc's own dependency output is not used; the list is short). The C files
# of a CUDA build get theirs from -MMD like every other object.
CUDEPS := $(wildcard src/cuda/*.h src/cuda/emu/*.h include/sattn/*.h)

ifeq ($(SATTN_CUDA),1)
CFLAGS += -DSATTN_CUDA
CUOBJ := $(CUSRC:%.cu=$(BUILD)/%.cu.o)
$(BUILD)/libsattn.a: $(CUOBJ)
ifeq ($(SATTN_PORTABLE),1)
# no oneDNN / OpenBLAS / libcudart.so needed where it runs: the BLAS shim, static cudart
LDLIBS := -Wl,-Bstatic -ljson-c -Wl,-Bdynamic -L$(CUDA_HOME)/lib64 -lcudart_static -ldl -lrt -lpthread -lstdc++ -lm
$(BUILD)/sattn $(BUILD)/cuda-parity: $(BUILD)/src/cuda/portable/blas_shim.o
else
LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lstdc++
endif
$(BUILD)/%.cu.o: %.cu $(CUDEPS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -Iinclude -Isrc/cuda -c $< -o $@
endif

ifeq ($(SATTN_CUDA),emu)
CFLAGS += -DSATTN_CUDA
CUOBJ := $(CUSRC:%.cu=$(BUILD)/%.emu.o) $(BUILD)/src/cuda/emu/emu.o
LDLIBS += -lstdc++
$(BUILD)/libsattn.a: $(CUOBJ)
$(BUILD)/%.emu.o: %.cu $(CUDEPS)
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O2 -g -DSA_EMU -fno-strict-aliasing -Wall -Wextra -Wno-unused-parameter -Iinclude -Isrc/cuda -x c++ -c $< -o $@
$(BUILD)/src/cuda/emu/emu.o: src/cuda/emu/emu.cc src/cuda/emu/emu.h
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O2 -g -Wall -Wextra -c $< -o $@
endif

PARITYOBJ := $(BUILD)/tests/cuda/parity.o $(BUILD)/tests/cuda/parity_tblock.o $(BUILD)/tests/cuda/parity_lindex.o
$(BUILD)/cuda-parity: $(PARITYOBJ) $(BUILD)/libsattn.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

.PHONY: cuda cuda-emu cuda-parity cuda-portable
cuda:
	@test -n "$(NVCC)" || { echo "make cuda: nvcc not found (neither on PATH nor /usr/local/cuda/bin/nvcc)" >&2; exit 1; }
	$(MAKE) SATTN_CUDA=1 BUILD=build-cuda NVCC=$(NVCC) build-cuda/sattn build-cuda/cuda-parity

cuda-parity: cuda
	build-cuda/cuda-parity

# The same binaries for a GPU machine without this project's Debian packages (the device
# machine's image has nvcc and PyTorch but no oneDNN/OpenBLAS): x86-64-v3 (AVX2, not
# -march=native), oneDNN and OpenBLAS replaced by src/cuda/portable/blas_shim.c, cudart
# static, json-c static, no MPI; libgomp.so.1 copied beside them in case that machine lacks it.
cuda-portable:
	@test -n "$(NVCC)" || { echo "make cuda-portable: nvcc not found" >&2; exit 1; }
	$(MAKE) SATTN_CUDA=1 SATTN_PORTABLE=1 MPI=0 BUILD=build-cuda-portable NVCC=$(NVCC) OPT="-O2 -march=x86-64-v3" \
	  build-cuda-portable/sattn build-cuda-portable/cuda-parity
	mkdir -p build-cuda-portable/lib
	cp -L $$($(CC) -print-file-name=libgomp.so.1) build-cuda-portable/lib/

cuda-emu:
	$(MAKE) SATTN_CUDA=emu BUILD=build-emu build-emu/cuda-parity
	build-emu/cuda-parity --quick

-include $(BUILD)/tests/cuda/parity.d $(BUILD)/tests/cuda/parity_tblock.d $(BUILD)/tests/cuda/parity_lindex.d
