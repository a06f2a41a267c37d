# Makefile — builds caddie (one binary), its CUDA backend, the sample data, tests and benches.
#
#   make            deps + CPU binary build/caddie (+ CUDA backend when nvcc is found)
#   make cuda       only the CUDA backend (build/cuda/libcaddie_cuda.a), nvcc sm_90, -Werror
#   CUDA=0 make     skip CUDA even when nvcc is present
#   make test       everything under AddressSanitizer + UBSan, ends with "N passed, N failed"
#   make demo       the bundled quick-start sweep on the CPU, then where results/report are
#   make bench      benchmarks (figures, never pass/fail)
#   make bench-gpu  `caddie bench --backend cuda` on the baseline config (skip line without a GPU);
#                   in bf16 (train_gpt.py's autocast; BENCH_GPU_ARGS="--steps 10 --warmup 3 --set ..."),
#                   TORCH_SCRIPT=path/train_gpt.py to compare
#   make screenshot docs/report.png from `caddie report` in headless Chromium (DB=file optional)
#   make sample     tokenize the bundled FineWeb sample into challenge-format shards
#   make fuzz       libFuzzer (clang) on every file parser, FUZZ_SECONDS each (default 20)
#
# Sources are discovered by directory: engine/*.c|*.cc, sweep/*.c, reports/*.c make
# libcaddie; cli/main.c is the entry point; tests/unit/test_*.c are test executables;
# kernels/*.cu is the CUDA backend. Adding a file needs no Makefile edit.
# Not here: anything that decides what to run (sweeps live in experiments/).

SHELL := /bin/bash
CC    := gcc
CXX   := g++
NVCC  ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA  ?= 1
ARCH  ?= -march=native

REL       = build/rel$(if $(HAVE_CUDA),-cuda,)
WARN     := -Wall -Wextra -Werror
# Project headers are found through -iquote . only, named with their folder ("engine/shard.h",
# never <x.h>), so a project header can never shadow a system one (runner/sched.h vs
# <sched.h>) and a grep for '"db/' shows every edge into the database layer.
INCLUDES := -iquote .
CFLAGS   := -std=c11 -D_GNU_SOURCE $(WARN) -fopenmp -g $(INCLUDES)
CXXFLAGS := -std=c++17 $(WARN) -g $(INCLUDES)
REL_OPT  := -O2 $(ARCH)
ASAN_OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=undefined,float-cast-overflow
LDLIBS   := -lsentencepiece_train -lsentencepiece -lsqlite3 -lyaml -lopenblas -lzstd -llzma -lbrotlienc -lbrotlidec -lz -lstdc++ -lpthread -lm

# Debian packages the build, the tests and the demo need (installed by `make deps`).
DEB_PKGS := libsqlite3-dev sqlite3 libyaml-dev libsentencepiece-dev libopenblas-dev \
            zlib1g-dev libzstd-dev liblzma-dev libbrotli-dev pkg-config
# The page test renders the HTML report in headless Chromium; the Slurm executor's tests
# (t042x) start a single-node cluster: munged, slurmctld and slurmd (tests/cli/slurm_lib.sh);
# t0803 runs the libFuzzer harnesses briefly (clang, FUZZ_PKGS below); peak RSS is read with
# GNU time (t0511).
TEST_PKGS := chromium fonts-dejavu-core slurm-wlm munge time

LIB_C   := $(filter-out cli/main.c,$(wildcard engine/*.c sweep/*.c db/*.c runner/*.c reports/*.c cli/*.c))
LIB_CXX := $(wildcard engine/*.cc)
CU_SRC  := $(wildcard kernels/*.cu)
TESTS_C := $(wildcard tests/unit/test_*.c)

# Release objects live in a directory per CUDA setting: -DCADDIE_CUDA is not tracked by make,
# so CUDA=0 after a CUDA build must not reuse objects compiled with it.
REL_OBJ   = $(LIB_C:%.c=$(REL)/%.o) $(LIB_CXX:%.cc=$(REL)/%.o) $(REL)/gen/buildinfo.o $(REL)/gen/schema_sql.o
ASAN_OBJ := $(LIB_C:%.c=build/asan/%.o) $(LIB_CXX:%.cc=build/asan/%.o) build/asan/gen/buildinfo.o build/asan/gen/schema_sql.o
TEST_BIN := $(TESTS_C:tests/unit/%.c=build/asan/tests/%)

# nvcc on PATH may be a wrapper outside the toolkit (/usr/local/bin/nvcc exec'ing
# /usr/local/cuda-13.0/bin/nvcc), so the toolkit root comes from nvcc itself (its TOP), not from
# where nvcc was found. The CUDA backend is built only when cuBLAS, cudart and NCCL are there to
# link against; otherwise the CPU binary is built and the reason is printed.
ifndef CUDA_HOME
  CUDA_HOME := $(if $(NVCC),$(shell $(NVCC) --dryrun -c -x cu /dev/null -o /dev/null 2>&1 | sed -n 's/^.*TOP=//p' | head -1 | xargs -r realpath -m))
endif
CUDA_LIBDIR := $(firstword $(foreach d,lib64 targets/x86_64-linux/lib,$(if $(wildcard $(CUDA_HOME)/$(d)/libcublas.so),$(CUDA_HOME)/$(d))))
NCCL_FOUND  := $(or $(wildcard $(CUDA_LIBDIR)/libnccl.so),$(wildcard /usr/lib/x86_64-linux-gnu/libnccl.so /usr/lib64/libnccl.so))
CUDA_WANTED := $(if $(and $(NVCC),$(filter-out 0,$(CUDA)),$(CU_SRC)),1,)
HAVE_CUDA   := $(if $(and $(CUDA_WANTED),$(CUDA_LIBDIR),$(NCCL_FOUND)),1,)
ifeq ($(CUDA_WANTED),1)
  ifneq ($(HAVE_CUDA),1)
    $(warning nvcc found ($(NVCC)) but cuBLAS/cudart/NCCL not found under '$(CUDA_HOME)' (set CUDA_HOME=...): building the CPU backend only)
  endif
endif
NVCCFLAGS := -std=c++17 -O3 -arch=sm_90 -Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror -I.
CU_OBJ    := $(CU_SRC:%.cu=build/cuda/%.o)
ifeq ($(HAVE_CUDA),1)
  BACKENDS    := cpu cuda
  CUDA_LIB    := build/cuda/libcaddie_cuda.a
  CUDA_LDLIBS := -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcublas -lcudart -lnccl
else
  BACKENDS    := cpu
endif

GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
GIT_DIRTY  := $(shell test -n "$$(git status --porcelain --untracked-files=no 2>/dev/null)" && echo 1 || echo 0)

.PHONY: all deps test-deps cuda test bench bench-gpu demo sample clean screenshot check-layers FORCE
all: build/caddie caddie

deps:
	@missing=$$(for p in $(DEB_PKGS) $(EXTRA_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "make deps: installing" $$missing; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $$missing >/dev/null \
	    || { echo "make deps: apt-get install failed for:" $$missing >&2; exit 1; }; \
	fi

test-deps:
	@$(MAKE) --no-print-directory deps EXTRA_PKGS="$(TEST_PKGS) $(FUZZ_PKGS)"

# ---- generated build info (commit, dirty flag, compiler, backends) -------------------
build/gen/buildinfo.c: FORCE
	@mkdir -p build/gen
	@printf '/* generated by the Makefile: what `caddie version` prints */\n#include "engine/buildinfo.h"\nconst char cad_build_commit[] = "%s";\nconst int cad_build_dirty = %s;\nconst char cad_build_compiler[] = "%s";\n#ifdef CADDIE_CUDA\nconst char cad_build_backends[] = "cpu cuda";\n#else\nconst char cad_build_backends[] = "cpu";\n#endif\n' \
	  "$(GIT_COMMIT)" "$(GIT_DIRTY)" "$$($(CC) --version | head -n1)" > $@.tmp
	@cmp -s $@.tmp $@ && rm $@.tmp || mv $@.tmp $@

# ---- SQL migrations compiled in (schema/NNNN_*.sql -> build/gen/schema_sql.c) ----------
SCHEMA_SQL := $(sort $(wildcard schema/[0-9][0-9][0-9][0-9]_*.sql))
build/gen/schema_sql.c: $(SCHEMA_SQL) Makefile
	@mkdir -p build/gen
	@{ echo '/* generated by the Makefile from the schema/ migrations (NNNN_name.sql) */'; \
	  echo '#include "db/schema_sql.h"'; i=0; \
	  for f in $(SCHEMA_SQL); do echo "static const char m$$i[] = {"; \
	    od -An -v -tx1 $$f | sed -e 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g'; echo '0};'; i=$$((i+1)); done; \
	  echo 'const cad_schema_migration cad_schema_migrations[] = {'; i=0; \
	  for f in $(SCHEMA_SQL); do echo "    {\"$$(basename $$f)\", m$$i},"; i=$$((i+1)); done; \
	  echo '    {0, 0},'; echo '};'; } > $@.tmp && mv $@.tmp $@
$(REL)/gen/schema_sql.o: build/gen/schema_sql.c db/schema_sql.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@
build/asan/gen/schema_sql.o: build/gen/schema_sql.c db/schema_sql.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# ---- release build -------------------------------------------------------------------
$(REL)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(REL_OPT) $(if $(HAVE_CUDA),-DCADDIE_CUDA=1) -MMD -MP -c $< -o $@
$(REL)/%.o: %.cc | deps
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(REL_OPT) -MMD -MP -c $< -o $@
$(REL)/gen/buildinfo.o: build/gen/buildinfo.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(if $(HAVE_CUDA),-DCADDIE_CUDA=1) -c $< -o $@
$(REL)/libcaddie.a: $(REL_OBJ)
	@rm -f $@; ar rcs $@ $^
build/caddie: $(REL)/cli/main.o $(REL)/libcaddie.a $(CUDA_LIB) build/gen/link-config
	$(CC) $(CFLAGS) $(REL_OPT) $(filter-out build/gen/link-config,$^) $(CUDA_LDLIBS) $(LDLIBS) -o $@
# Relink build/caddie when the backend set changes (CUDA=0 after a CUDA build and back).
build/gen/link-config: FORCE
	@mkdir -p build/gen
	@echo "backends: $(BACKENDS)" > $@.tmp; cmp -s $@.tmp $@ && rm $@.tmp || mv $@.tmp $@
caddie: build/caddie
	@ln -sf build/caddie caddie

# ---- CUDA backend --------------------------------------------------------------------
cuda: $(if $(HAVE_CUDA),build/cuda/libcaddie_cuda.a,cuda-missing)
.PHONY: cuda-missing
cuda-missing:
	@echo "make cuda: nvcc not found (or CUDA=0, or no kernels/*.cu): CUDA backend not built" >&2; exit 1
build/cuda/%.o: %.cu $(wildcard kernels/*.cuh kernels/*.h engine/*.h) | deps
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@
build/cuda/libcaddie_cuda.a: $(CU_OBJ)
	@rm -f $@; ar rcs $@ $^

# ---- fuzzing (clang libFuzzer): make fuzz ---------------------------------------------
# tests/fuzz/fuzz_<target>.c each define LLVMFuzzerTestOneInput over one real parser. `make fuzz`
# builds the library a third time with clang (its own objects under build/fuzz/, coverage
# instrumented), links each harness with libFuzzer, seeds a corpus per target and runs it for
# FUZZ_SECONDS; it fails when any target crashed, keeping the inputs in build/fuzz/crashes/.
# The same harnesses are linked with tests/fuzz/replay_main.c under gcc ASan+UBSan
# (build/asan/fuzz/replay_<target>), so the seeds and saved crash inputs are replayed by
# `make test` (tests/cli/t0802-fuzz-replay.sh). Not here: what a harness feeds (the .c files).
FUZZ_CC      := clang
FUZZ_CXX     := clang++
FUZZ_SECONDS ?= 20
FUZZ_SAN     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
# The library is written for gcc: clang ignores its `#pragma GCC optimize`, and at -O1 under
# the sanitizers it declines some `omp simd` loops (an optimizer note, not a code problem).
FUZZ_CFLAGS   = $(CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -Wno-unknown-pragmas -Wno-pass-failed
FUZZ_CXXFLAGS = $(CXXFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_PKGS    := clang libclang-rt-dev libomp-dev
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_TARGETS := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
FUZZ_OBJ     := $(LIB_C:%.c=build/fuzz/%.o) $(LIB_CXX:%.cc=build/fuzz/%.o) build/fuzz/gen/buildinfo.o build/fuzz/gen/schema_sql.o
FUZZ_BIN     := $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
FUZZ_REPLAY_BIN := $(FUZZ_TARGETS:%=build/asan/fuzz/replay_%)
# Largest input per target: a few headers' worth for binary formats, a long file for text.
FUZZ_MAXLEN_config := 8192
FUZZ_MAXLEN_spec := 8192
FUZZ_MAXLEN_shard := 4096
FUZZ_MAXLEN_safetensors := 16384
FUZZ_MAXLEN_checkpoint := 2048
FUZZ_MAXLEN_logparse := 65536
FUZZ_MAXLEN_int8 := 8192
FUZZ_MAXLEN_record := 32768
# Seeds besides tests/fuzz/seeds/<target>/: the repo's own fixtures of that format.
FUZZ_FIXTURES_config := experiments/configs/*.yaml
FUZZ_FIXTURES_spec := experiments/*.yaml
FUZZ_FIXTURES_shard := tests/fixtures/data/loader/*.bin
FUZZ_FIXTURES_safetensors := tests/fixtures/engine/*.safetensors
FUZZ_FIXTURES_logparse := tests/fixtures/logs/**/*.txt tests/fixtures/logs/**/*.log

.PHONY: fuzz fuzz-deps fuzz-build fuzz-seeds
fuzz-deps:
	@$(MAKE) --no-print-directory deps EXTRA_PKGS="$(FUZZ_PKGS)"
build/fuzz/%.o: %.c | fuzz-deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@
build/fuzz/%.o: %.cc | fuzz-deps
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -MMD -MP -c $< -o $@
build/fuzz/gen/%.o: build/gen/%.c | fuzz-deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@
build/fuzz/libcaddie.a: $(FUZZ_OBJ)
	@rm -f $@; ar rcs $@ $^
# -fsanitize-link-c++-runtime: a harness that reaches the C++ tokenizer shim (fuzz_record, via
# db/) needs UBSan's C++ part (vptr checks), which the C driver does not link by itself.
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h build/fuzz/libcaddie.a
	$(FUZZ_CC) $(CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer -fsanitize-link-c++-runtime $< build/fuzz/libcaddie.a $(LDLIBS) -o $@
build/asan/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay_main.c tests/fuzz/fuzz_common.h build/asan/libcaddie.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASAN_OPT) $< tests/fuzz/replay_main.c build/asan/libcaddie.a $(LDLIBS) -o $@
fuzz-build: $(FUZZ_BIN)

# Regenerates tests/fuzz/seeds/ from the library's own writers (valid files of each format).
build/asan/fuzz/gen_seeds: tests/fuzz/gen_seeds.c build/asan/libcaddie.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASAN_OPT) $< build/asan/libcaddie.a $(LDLIBS) -o $@
fuzz-seeds: build/asan/fuzz/gen_seeds
	./build/asan/fuzz/gen_seeds tests/fuzz/seeds

# One target after the other (the CPU is shared); each prints its line, then the totals.
fuzz: fuzz-build
	@bash tests/fuzz/run_fuzz.sh "$(FUZZ_SECONDS)" $(foreach t,$(FUZZ_TARGETS),'$(t):$(FUZZ_MAXLEN_$(t)):$(FUZZ_FIXTURES_$(t))')

# ---- sanitized build + tests ---------------------------------------------------------
build/asan/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASAN_OPT) -MMD -MP -c $< -o $@
build/asan/%.o: %.cc | deps
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(ASAN_OPT) -MMD -MP -c $< -o $@
build/asan/gen/buildinfo.o: build/gen/buildinfo.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASAN_OPT) -c $< -o $@
build/asan/libcaddie.a: $(ASAN_OBJ)
	@rm -f $@; ar rcs $@ $^
build/asan/caddie: build/asan/cli/main.o build/asan/libcaddie.a
	$(CC) $(CFLAGS) $(ASAN_OPT) $^ $(LDLIBS) -o $@
build/asan/tests/%: tests/unit/%.c build/asan/libcaddie.a tests/unit/check.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASAN_OPT) -Itests/unit $< build/asan/libcaddie.a $(LDLIBS) -o $@
# the emulated-kernel test compiles the kernel sources and the emulator into itself
build/asan/tests/test_kernels_emu build/asan/tests/test_kernels_emu_train: $(wildcard kernels/*.cuh kernels/*.h kernels/emu/*.c kernels/emu/*.h)

check-layers:
	@bash tests/layers.sh

# The libFuzzer harnesses for t0803 when clang is there (test-deps installs it; without it
# t0803 skips, saying so).
FUZZ_CI_BIN := $(if $(shell command -v $(FUZZ_CC) 2>/dev/null),$(FUZZ_BIN))
test: test-deps build/asan/caddie $(TEST_BIN) $(FUZZ_REPLAY_BIN) $(FUZZ_CI_BIN) sample
	@bash tests/run.sh build/asan/tests build/asan/caddie

# ---- bundled sample, demo, bench -----------------------------------------------------
SAMPLE_DIR := data/sample
SAMPLE_OUT := $(SAMPLE_DIR)/fineweb10B_sp1024
sample: $(SAMPLE_OUT)/fineweb_val_000000.bin
$(SAMPLE_OUT)/fineweb_val_000000.bin: build/caddie $(SAMPLE_DIR)/fineweb_sample.jsonl $(SAMPLE_DIR)/fineweb_1024_bpe.model
	@rm -rf $(SAMPLE_OUT).tmp
	./build/caddie data prepare --tokenizer $(SAMPLE_DIR)/fineweb_1024_bpe.model \
	    --input $(SAMPLE_DIR)/fineweb_sample.jsonl --val-docs $(SAMPLE_VAL_DOCS) --out $(SAMPLE_OUT).tmp
	@rm -rf $(SAMPLE_OUT) && mv $(SAMPLE_OUT).tmp $(SAMPLE_OUT)
SAMPLE_VAL_DOCS := 60

demo: all sample
	@bash experiments/demo.sh

bench: all
	@bash tests/bench.sh

# The CUDA train-step benchmark on train_gpt.py's baseline (9x512, T=1024, 524,288 tokens/step on
# one device) over the bundled sample. No CUDA backend or no device: one skip line, exit 0.
BENCH_GPU_ARGS ?= --steps 10 --warmup 3 --set matmul_precision=bf16
bench-gpu: all sample
	@./build/caddie bench --backend cuda $(BENCH_GPU_ARGS) $(if $(TORCH_SCRIPT),--torch-script $(TORCH_SCRIPT)) 2>build/bench-gpu.err; \
	rc=$$?; cat build/bench-gpu.err >&2; \
	if [ $$rc -ne 0 ] && grep -q "no CUDA device" build/bench-gpu.err; then \
	    echo "make bench-gpu: skipped: $$(grep -o 'no CUDA device.*' build/bench-gpu.err | head -n1)"; exit 0; fi; \
	exit $$rc

# docs/report.png, the README's picture of `caddie report` (fixture DB unless DB=file given)
screenshot: build/caddie test-deps
	@bash reports/screenshot.sh "$(DB)" "$(OUT)"

clean:
	rm -rf build caddie $(SAMPLE_OUT)

-include $(shell find build -name '*.d' 2>/dev/null)
