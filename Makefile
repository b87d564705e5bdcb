# sattn — see README.md. `make` builds build/sattn; `make test` runs the tests;
# `make check` runs them under AddressSanitizer + UndefinedBehaviorSanitizer.
CC      ?= gcc
OPT     ?= -O2 -march=native
CFLAGS  := -std=c11 $(OPT) -fno-math-errno $(XCFLAGS) -fopenmp -Wall -Wextra -Wshadow -Wno-unused-parameter -Iinclude -MMD -MP
OPENBLAS_DIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
LDLIBS  := -ljson-c -ldnnl -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) -lopenblas -lm
BUILD   ?= build

# MPI (issue 13, docs/mpi.md): OpenMPI is linked when its compiler wrapper is installed
# (scripts/deps.sh installs openmpi-bin and libopenmpi-dev); `make MPI=0` builds without it,
# `make mpi` insists on it. Only src/core/dist.c includes mpi.h.
MPI     ?= $(if $(shell command -v mpicc 2>/dev/null),1,0)
ifeq ($(MPI),1)
CFLAGS  += -DSATTN_MPI $(shell mpicc --showme:compile)
LDLIBS  += $(shell mpicc --showme:link)
endif

SRC     := $(wildcard src/*/*.c)
OBJ     := $(SRC:%.c=$(BUILD)/%.o)
TESTSRC := $(wildcard tests/*.c)
TESTOBJ := $(TESTSRC:%.c=$(BUILD)/%.o)

.PHONY: all mpi test check valgrind demo bench deps data clean count check-layers
all: $(BUILD)/sattn

# dist.o is rebuilt when MPI changes (make does not track flags).
$(BUILD)/src/core/dist.o: $(BUILD)/.mpi-$(MPI)
$(BUILD)/.mpi-$(MPI):
	@mkdir -p $(BUILD) && rm -f $(BUILD)/.mpi-* && touch $@

mpi:
	@command -v mpicc >/dev/null || { echo "make mpi: mpicc not found (bash scripts/deps.sh installs OpenMPI)"; exit 1; }
	$(MAKE) MPI=1 all

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libsattn.a: $(OBJ)
	ar rcs $@ $^

CLISRC  := $(wildcard cli/*.c)
CLIOBJ  := $(CLISRC:%.c=$(BUILD)/%.o)

$(BUILD)/sattn: $(CLIOBJ) $(BUILD)/libsattn.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/sattn-tests: $(TESTOBJ) $(BUILD)/libsattn.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS) -lcriterion

# Tests run from the repo root; the CLI tests exec $(BUILD)/sattn. OpenMP waits
# passively: tests measure numbers, not speed, and spinning waits make a busy 2-core
# machine 10-30x slower. `deps` first, so
# `make test` works on a fresh machine (it only prints "all present" when nothing is missing).
# data/kjv.txt: the GPT-2 tokenizer's agreement test encodes the whole KJV (docs/tokenizer.md).
test: deps
	$(MAKE) $(BUILD)/sattn $(BUILD)/sattn-tests count data/kjv.txt
	SATTN_BIN=$(BUILD)/sattn SATTN_COUNT_BIN=$(COUNTBUILD)/sattn OMP_NUM_THREADS=2 \
	  OMP_WAIT_POLICY=passive $(BUILD)/sattn-tests --jobs 1

# The instrumented build (docs/costmodel.md "Counted"): with -DSATTN_COUNT the attention
# kernels count the multiply-adds and bytes of their matrix products; its `sattn count`
# prints them beside the analytic model, and the tests compare the two exactly.
COUNTBUILD := $(BUILD)-count
count:
	$(MAKE) BUILD=$(COUNTBUILD) XCFLAGS=-DSATTN_COUNT $(COUNTBUILD)/sattn

SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
check:
	$(MAKE) BUILD=build-san OPT="-O1 -g -march=native $(SANFLAGS)" \
	  LDLIBS="$(LDLIBS) $(SANFLAGS)" test

# The layer check (docs/architecture.md "Layers"): every #include points to its own module
# or one below it, no include cycle; long functions are printed as warnings.
check-layers:
	bash scripts/check-layers.sh

# The CLI's main paths under valgrind memcheck (an AVX2 build: valgrind lacks AVX-512).
valgrind:
	bash scripts/valgrind.sh

deps:
	bash scripts/deps.sh

data/kjv.txt:
	bash scripts/corpus.sh data/kjv.txt

data: data/kjv.txt

demo: deps
	$(MAKE) all data/kjv.txt
	OMP_NUM_THREADS=2 $(BUILD)/sattn demo

# Training throughput (median of 7 runs), GEMM library comparison, and the standard
# attention sweep (docs/bench.md): prefill and decode over C {128..1024} x T {64..32768} x
# k {8,32,128}, plus the backward at C 512, k 32. About 8 minutes on 2 cores; results and
# the report's plots in bench-out/. (`sattn bench` alone runs the full grid, k 8..256 and
# every phase: about 22 minutes.)
bench: $(BUILD)/sattn
	mkdir -p bench-out
	OMP_NUM_THREADS=2 $(BUILD)/sattn bench-train --runs 7 --json-out bench-out/train.json
	OMP_NUM_THREADS=2 $(BUILD)/sattn bench-gemm | tee bench-out/gemm.txt
	OMP_NUM_THREADS=2 $(BUILD)/sattn bench --ks 8,32,128 --phases prefill,decode \
	  --csv bench-out/attn.csv | tee bench-out/attn.txt
	OMP_NUM_THREADS=2 $(BUILD)/sattn bench --dims 512 --ks 32 --phases backward \
	  --csv bench-out/attn-backward.csv | tee bench-out/attn-backward.txt
	$(BUILD)/sattn report --out bench-out/report --bench bench-out/attn.csv --dim 512 --heads 8 --k 32

clean:
	rm -rf build build-san build-vg build-count build-san-count build-cuda build-cuda-portable build-emu

-include $(OBJ:.o=.d) $(TESTOBJ:.o=.d) $(CLIOBJ:.o=.d)

# ---------------------------------------------------------------------- fuzzing (issue 9)
# `make fuzz`: every file reader under libFuzzer + ASan + UBSan (fuzz/README.md). The library
# is rebuilt with clang in build-fuzz (coverage-instrumented, -fsanitize=fuzzer-no-link), each
# fuzz/fuzz_X.c links against it; fuzz/run.sh replays fuzz/regress/X and fuzz/corpus/X, then
# fuzzes each reader for FUZZ_SECONDS and fails on any crash, hang (-timeout), leak or
# sanitizer report. `make fuzz-seeds` regenerates the seed corpora with the real writers.
# The gcc build above is untouched.
FUZZ_CC      ?= clang
FUZZ_BUILD   := build-fuzz
FUZZ_SECONDS ?= 30
FUZZ_READERS := ckpt tokens shard heads plan bench_csv eval_json task_json trainlog phases bpe_vocab bpe_encode safetensors
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c11 -O1 -g -march=native -fopenmp -Wall -Wextra -Wno-unused-parameter \
                -Wno-pass-failed -Iinclude $(FUZZ_SAN) $(FUZZ_XCFLAGS)
FUZZ_LIBOBJ  := $(SRC:%.c=$(FUZZ_BUILD)/%.o)
# Rebuild everything when the flags change (e.g. FUZZ_XCFLAGS=-DSATTN_FUZZ_STRICT=1).
FUZZ_STAMP   := $(FUZZ_BUILD)/.flags-$(shell echo '$(FUZZ_CC) $(FUZZ_CFLAGS)' | cksum | cut -d' ' -f1)
FUZZ_BINS    := $(FUZZ_READERS:%=$(FUZZ_BUILD)/fuzz_%)

.PHONY: fuzz fuzz-build fuzz-seeds fuzz-clean
clean: fuzz-clean
fuzz-clean:
	rm -rf $(FUZZ_BUILD)

$(FUZZ_STAMP):
	@mkdir -p $(FUZZ_BUILD)
	@rm -f $(FUZZ_BUILD)/.flags-*
	@touch $@

$(FUZZ_BUILD)/src/%.o: src/%.c $(FUZZ_STAMP)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/libsattn.a: $(FUZZ_LIBOBJ)
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h $(wildcard include/sattn/*.h) $(FUZZ_BUILD)/libsattn.a \
                      $(FUZZ_STAMP)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_BUILD)/libsattn.a -o $@ -ljson-c -ldnnl -lm

fuzz-build: $(FUZZ_BINS)

fuzz: deps
	$(MAKE) fuzz-build
	bash fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_READERS)

# The seed generator is built by gcc against the normal library (the real writers);
# `sattn eval --json` writes the eval seed.
$(BUILD)/fuzz-gen-seeds: fuzz/gen_seeds.c $(BUILD)/libsattn.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

fuzz-seeds: $(BUILD)/fuzz-gen-seeds $(BUILD)/sattn
	bash fuzz/make_seeds.sh $(BUILD)

-include $(FUZZ_LIBOBJ:.o=.d)

# CUDA (issue 5): make cuda, make cuda-emu, make cuda-parity — see cuda.mk and docs/cuda.md
include cuda.mk
