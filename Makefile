# elbo — build, test and benchmark. `make help` lists the targets.
#
#   make              libelbo.a and the elbo command (native build in build/)
#   make test         all tests (installs missing Debian packages first when root)
#   make bench        the benchmark (main job), then time to quality; QUICK=1 for a short run, BENCH_FILTER=regex
#   make bench-check  quick subset compared with this CPU's results/baselines/<chip>-<isa>.json; fails on a regression
#                     of the single-thread rows (geometric mean -6 %, or one row -25 %); says it skipped when no
#                     baseline matches this chip and kernel path
#   make bench-baseline  rerun that subset with more repetitions and write this CPU's baseline
#   make bench-check-rates  bench-check's false alarms and detection of a planted 10 % GEMM slowdown (20 runs each)
#   make bench-ab BASE=rev  the GEMM rows of revision BASE's library against the working tree's, in one process: ratios, same bits
#   make MPI=1       build/elbo-mpi: data-parallel training over MPI (objects in build/mpi/; MPICC=mpicc.mpich for MPICH)
#   make test-mpi     elbo-mpi under mpirun: checkpoints byte-identical for 1-4 ranks, refusals, faults (scripts/test_mpi.sh)
#   make bench-mpi    VAE samples/s: 2 ranks x 1 thread vs 1 process x 2 threads at batch 128 and 1024 (scripts/bench_mpi.sh)
#   make test-arm64   cross-build for arm64 and run the tests under qemu-aarch64 (all but test_cli_*; the model
#                     suites on the NEON tables only, ELBO_TEST_ISAS=neon; suites $(nproc) at a time, TEST_JOBS),
#                     then the arm64 elbo's bf16 training of every model (scripts/test_arm64_cli.sh)
#   make report       compare the CPUs in results/*.json: results/report.md (table) and results/report.png
#   make bench-pytorch  training samples/s, elbo vs PyTorch (best thread configurations) at batch 64..1024
#   make time-to-quality  seconds to test -ELBO <= 31.0, elbo vs PyTorch (MLPerf-style; TTQ_RUNS=5)
#   make profile      perf profile of training steps: top symbols + folded stacks in results/ (PROFILE_ARGS=...)
#   make fuzz         libFuzzer targets (IDX plain and gzip, checkpoints, CLI options), FUZZ_SECONDS each
#   make test-sanitize  the test suite built with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
#   make valgrind     valgrind memcheck over a short training run (0 errors, 0 bytes definitely lost)
#   make classifier   train the reference classifier once (20 epochs, seed 1) into build/classifier.safetensors
#   make zoo          VAE, GAN, flow and diffusion side by side (fp32 and bf16, fixed steps, scored by the classifier):
#                     results/zoo-<cpu>-<date>.{json,md,png} (under 15 minutes); ZOO_QUICK=1 a one-minute version
#                     into build/zoo/; ZOO_ARGS=... more `elbo zoo` options
#   make deps         install the Debian packages the project needs (root); deps-fuzz: clang for make fuzz

ifeq ($(origin CC),default)
CC := gcc
endif
CROSS ?=
ifneq ($(CROSS),)
CC := $(CROSS)gcc
endif
# The MPI build (make MPI=1): build/elbo-mpi, its objects in build/mpi/ apart from the default build's; compiled by
# MPICC (Open MPI's mpicc by default; MPICC=mpicc.mpich BUILD=build/mpich MPI_BIN=build/elbo-mpich builds against MPICH).
MPICC ?= mpicc
MPI_BIN ?= build/elbo-mpi
ifeq ($(MPI),1)
CC := $(MPICC)
BUILD ?= build/mpi
endif

TARGET_ARCH_NAME := $(shell $(CC) -dumpmachine 2>/dev/null | cut -d- -f1)
BUILD ?= build$(if $(CROSS),-$(TARGET_ARCH_NAME))
OPT ?= -O3
CFLAGS_BASE := -std=c11 $(OPT) -g -Wall -Wextra -fno-omit-frame-pointer -D_GNU_SOURCE -pthread -fopenmp \
               -Isrc -Isrc/kernels -Isrc/blocks -Isrc/data -Isrc/model -Isrc/runtime -Isrc/cli
LDLIBS_BASE := -lsleef -lz -lcjson -lhwloc -lm -pthread

# ISA files carry their own flags; everything else is built for the baseline ISA so that
# one binary runs anywhere and picks its kernels at run time.
ifeq ($(TARGET_ARCH_NAME),x86_64)
ISA_EXCLUDE := %_neon.c %_neonbf16.c
AVX2_FLAGS := -mavx2 -mfma
AVX512_FLAGS := -mavx512f -mavx2 -mfma
AVX512BF16_FLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512bf16 -mavx2 -mfma
else ifeq ($(TARGET_ARCH_NAME),aarch64)
ISA_EXCLUDE := %_avx2.c %_avx512.c %_avx512bf16.c
NEONBF16_FLAGS := -march=armv8.6-a+bf16
else
ISA_EXCLUDE := %_avx2.c %_avx512.c %_avx512bf16.c %_neon.c %_neonbf16.c
endif

# Random123 is header-only and architecture-independent, but a cross compiler does not search /usr/include:
# cross builds see it through a symlinked include directory of their own.
ifneq ($(CROSS),)
R123_INC := $(BUILD)/include
CFLAGS_BASE += -I$(R123_INC)
R123_DEP := $(R123_INC)/Random123
endif

LIB_SRC := $(filter-out $(ISA_EXCLUDE),$(wildcard src/kernels/*.c src/blocks/*.c src/data/*.c src/model/*.c src/runtime/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_SRC := $(wildcard src/cli/*.c)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
# The MPI layer (src/dist) is part of the MPI build's command only; its main() wraps main.c's.
ifeq ($(MPI),1)
CFLAGS_BASE += -DELBO_MPI -Isrc/dist
CLI_SRC += $(wildcard src/dist/*.c)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
$(BUILD)/src/cli/main.o: EXTRA_DEFS = -Dmain=elbo_cli_main
endif
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
# Tests that drive the native `elbo` command (test_cli_*) do not run under qemu; the rest do.
CROSS_TEST_BIN := $(filter-out $(BUILD)/tests/test_cli_%,$(TEST_BIN))
BENCH_SRC := $(filter-out $(ISA_EXCLUDE),$(wildcard bench/*.c))
BENCH_OBJ := $(BENCH_SRC:%.c=$(BUILD)/%.o) $(BUILD)/bench/gbench.o
CXX := $(CROSS)g++
CXXFLAGS_BASE := -std=c++17 $(OPT) -g -Wall -Wextra -fno-omit-frame-pointer -pthread -Ibench
# The commit a bench binary was built from, for its results' context ("unknown" outside git).
GIT_COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)$(shell git rev-parse --git-dir >/dev/null 2>&1 && ! git diff-index --quiet HEAD -- 2>/dev/null && echo -dirty)

BUILD_FLAGS_STR := $(CC) $(CFLAGS_BASE) $(CFLAGS); ISA files: $(AVX2_FLAGS)$(if $(AVX512_FLAGS),; $(AVX512_FLAGS))

# One short line per step ("CC src/kernels/gemm.o"); `make V=1` prints the full commands.
ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-5s %s\n' $(1) $(2)
endif

.PHONY: zoo bench-mpi test-mpi check-deps-mpi bench-check-rates bench-ab classifier all test test-arm64 fuzz fuzz-build test-sanitize valgrind deps-fuzz check-deps-fuzz bench bench-check bench-baseline bench-pytorch report time-to-quality profile deps deps-arm64 check-deps check-deps-arm64 clean help
all: build-config $(BUILD)/libelbo.a $(BUILD)/elbo $(if $(filter 1,$(MPI)),$(MPI_BIN))

# One visible line saying what this build found: target, kernel paths, OpenMP, hwloc.
.PHONY: build-config
build-config:
	@omp=$$(echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo yes || echo NO); \
	 hw=$$(pkg-config --modversion hwloc 2>/dev/null || echo missing); \
	 echo "elbo: $(TARGET_ARCH_NAME) build in $(BUILD)/: kernels scalar$(if $(AVX2_FLAGS), + avx2)$(if $(AVX512_FLAGS), + avx512)$(if $(filter aarch64,$(TARGET_ARCH_NAME)), + neon), OpenMP $$omp, hwloc $$hw"

$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(call say,CC,$@)
	$(Q)$(CC) $(CFLAGS_BASE) $(CFLAGS) $(AVX2_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(call say,CC,$@)
	$(Q)$(CC) $(CFLAGS_BASE) $(CFLAGS) $(AVX512_FLAGS) -MMD -MP -c $< -o $@

# bf16 kernel files: the bf16 instructions for that file only (dispatch.c runs them where the CPU has them).
$(BUILD)/%_avx512bf16.o: %_avx512bf16.c
	@mkdir -p $(dir $@)
	$(call say,CC,$@)
	$(Q)$(CC) $(CFLAGS_BASE) $(CFLAGS) $(AVX512BF16_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%_neonbf16.o: %_neonbf16.c | $(R123_DEP)
	@mkdir -p $(dir $@)
	$(call say,CC,$@)
	$(Q)$(CC) $(CFLAGS_BASE) $(CFLAGS) $(NEONBF16_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.c | $(R123_DEP)
	@mkdir -p $(dir $@)
	$(call say,CC,$@)
	$(Q)$(CC) $(CFLAGS_BASE) $(CFLAGS) $(EXTRA_DEFS) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.cc
	@mkdir -p $(dir $@)
	$(call say,CXX,$@)
	$(Q)$(CXX) $(CXXFLAGS_BASE) $(CXXFLAGS) -MMD -MP -c $< -o $@

# bench_context.o records the commit: rebuilt when it changes (the stamp is rewritten only then).
$(BUILD)/bench/bench_context.o: EXTRA_DEFS = '-DELBO_GIT_COMMIT="$(GIT_COMMIT)"' '-DELBO_BUILD_FLAGS="$(BUILD_FLAGS_STR)"'
# the zoo's JSON names the commit too
$(BUILD)/src/cli/zoo_cmd.o: EXTRA_DEFS = '-DELBO_GIT_COMMIT="$(GIT_COMMIT)"'
$(BUILD)/src/cli/zoo_cmd.o: $(BUILD)/bench/git-commit.stamp
# the build flags only in the objects that print them
$(BUILD)/src/cli/info.o: EXTRA_DEFS = '-DELBO_BUILD_FLAGS="$(BUILD_FLAGS_STR)"'
$(BUILD)/bench/bench_context.o: $(BUILD)/bench/git-commit.stamp
$(BUILD)/bench/git-commit.stamp: FORCE
	@mkdir -p $(dir $@)
	@echo '$(GIT_COMMIT)' | cmp -s - $@ || echo '$(GIT_COMMIT)' > $@
.PHONY: FORCE
FORCE:

$(R123_INC)/Random123:
	@mkdir -p $(R123_INC)
	ln -sfn /usr/include/Random123 $@

$(BUILD)/libelbo.a: $(LIB_OBJ)
	@rm -f $@
	$(call say,AR,$@)
	$(Q)$(AR) rcs $@ $^

# PNG output (libpng) is part of the command, not the library: the library and its cross-built tests do not need it.
# LAPACKE (the Fréchet distance's eigensolver, src/model/scoring.c) is linked only where scoring is used.
$(BUILD)/elbo: $(CLI_OBJ) $(BUILD)/libelbo.a
	$(call say,LD,$@)
	$(Q)$(CC) $(CFLAGS_BASE) $(CFLAGS) $(CLI_OBJ) $(BUILD)/libelbo.a $(LDLIBS_BASE) -lpng -llapacke -o $@

ifeq ($(MPI),1)
$(MPI_BIN): $(BUILD)/elbo
	$(call say,CP,$@)
	$(Q)cp $< $@
endif

# The scoring test calls LAPACKE (src/model/scoring.c).
$(BUILD)/tests/test_model_scoring: TEST_LIBS := -llapacke

# The command's tests (native only) read its PNGs back with libpng.
$(BUILD)/tests/test_cli_%: TEST_LIBS := -lpng
# The placement test records the library's binding calls instead of making them (tests/test_runtime_placement.c).
$(BUILD)/tests/test_runtime_placement: TEST_LIBS := -Wl,--wrap=hwloc_set_cpubind,--wrap=hwloc_set_area_membind
$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(BUILD)/libelbo.a
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(CFLAGS_BASE) $(CFLAGS) -Itests '-DELBO_BIN="$(BUILD)/elbo"' $< $(BUILD)/libelbo.a -lcmocka $(TEST_LIBS) $(LDLIBS_BASE) -o $@

# Google Benchmark is C++: the bench links with g++ (everything but bench/gbench.cc is C).
$(BUILD)/bench/elbo_bench: $(BENCH_OBJ) $(BUILD)/libelbo.a
	$(call say,LD,$@)
	$(Q)$(CXX) $(CFLAGS_BASE) $(CFLAGS) $(BENCH_OBJ) $(BUILD)/libelbo.a -lbenchmark -lopenblas -ldnnl $(LDLIBS_BASE) -o $@

# The benchmark with a planted regression (bench/slowdown/gemm_slowdown.c: every GEMM call ELBO_BENCH_SLOWDOWN_PCT %
# slower), used only to measure what make bench-check catches (make bench-check-rates).
GEMM_WRAP := -Wl,--wrap=elbo_gemm,--wrap=elbo_gemm_packed,--wrap=elbo_gemm_packed_cols
$(BUILD)/bench/elbo_bench_slowdown: $(BENCH_OBJ) $(BUILD)/bench/slowdown/gemm_slowdown.o $(BUILD)/libelbo.a
	$(call say,LD,$@)
	$(Q)$(CXX) $(CFLAGS_BASE) $(CFLAGS) $(BENCH_OBJ) $(BUILD)/bench/slowdown/gemm_slowdown.o $(BUILD)/libelbo.a \
	  $(GEMM_WRAP) -lbenchmark -lopenblas -ldnnl $(LDLIBS_BASE) -o $@

# ---- dependencies (Debian packages) ----
DEB_PACKAGES := gcc g++ make libc6-dev pkg-config libsleef-dev libcmocka-dev libopenblas-dev valgrind \
                zlib1g-dev libcjson-dev libhwloc-dev librandom123-dev dataset-fashion-mnist python3-torch python3-numpy \
                libbenchmark-dev libbenchmark-tools libdnnl-dev python3-scipy python3-matplotlib linux-perf libpng-dev \
                liblapacke-dev
DEB_PACKAGES_ARM64 := gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libsleef-dev:arm64 libcmocka-dev:arm64 \
                      zlib1g-dev:arm64 libcjson-dev:arm64 libhwloc-dev:arm64 libgomp1:arm64 liblapacke-dev:arm64 \
                      libpng-dev:arm64
# make MPI=1 (build/elbo-mpi) and make test-mpi: Open MPI.
DEB_PACKAGES_MPI := libopenmpi-dev openmpi-bin
# make fuzz: clang with libFuzzer and the sanitizer runtimes.
DEB_PACKAGES_FUZZ := clang libclang-rt-14-dev zlib1g-dev libcjson-dev libsleef-dev
missing = $(shell for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done)

deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES) $(DEB_PACKAGES_MPI)

deps-fuzz:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES_FUZZ)

check-deps-fuzz:
	@m="$(call missing,$(DEB_PACKAGES_FUZZ))"; if [ -n "$$m" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "elbo: installing missing packages: $$m"; $(MAKE) --no-print-directory deps-fuzz; \
	  else echo "elbo: missing Debian packages: $$m"; \
	       echo "elbo: run as root:  apt-get install --no-install-recommends $$m"; exit 1; fi; fi

deps-arm64:
	dpkg --add-architecture arm64
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES_ARM64)

# Installs what is missing when root; otherwise names the exact command and stops.
check-deps:
	@m="$(call missing,$(DEB_PACKAGES))"; if [ -n "$$m" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "elbo: installing missing packages: $$m"; $(MAKE) --no-print-directory deps; \
	  else echo "elbo: missing Debian packages: $$m"; \
	       echo "elbo: run as root:  apt-get install --no-install-recommends $$m"; exit 1; fi; fi

check-deps-arm64:
	@m="$(call missing,$(DEB_PACKAGES_ARM64))"; if [ -n "$$m" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "elbo: installing missing packages: $$m"; $(MAKE) --no-print-directory deps-arm64; \
	  else echo "elbo: missing Debian packages: $$m"; \
	       echo "elbo: run as root:  dpkg --add-architecture arm64 && apt-get update && apt-get install --no-install-recommends $$m"; exit 1; fi; fi

# ---- fuzzing (clang's libFuzzer), sanitizers, valgrind ----
# Fuzz targets (fuzz/fuzz_*.c) link the library's readers built by clang with libFuzzer, ASan and UBSan in
# $(FUZZ_BUILD); the OpenMP trainer is not part of them. Each target starts from its seed corpus in
# tests/fuzz_corpus/<name> (scripts/fuzz_seeds.py writes it), keeps what it finds in $(FUZZ_BUILD)/corpus/<name>,
# runs FUZZ_SECONDS and writes its log to $(FUZZ_BUILD)/<target>.log; a crash, leak, timeout (FUZZ_TIMEOUT s per
# input) or out-of-memory (FUZZ_RSS_MB) stops it with the reproducer in $(FUZZ_BUILD)/artifacts/ and fails make.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TIMEOUT ?= 10
FUZZ_RSS_MB ?= 2048
FUZZ_TARGETS ?= idx idx_gz checkpoint args
FUZZ_CC := clang
FUZZ_BASE_CFLAGS := -std=c11 -O1 -g -Wall -Wextra -fno-omit-frame-pointer -D_GNU_SOURCE -Isrc -Isrc/kernels -Isrc/blocks -Isrc/data \
                    -Isrc/model -Isrc/runtime -Isrc/cli
FUZZ_CFLAGS := $(FUZZ_BASE_CFLAGS) -fsanitize=address,undefined -fno-sanitize-recover=all
# The per-ISA kernel files (SIMD tiles) are built for the fuzzers with coverage but without ASan and UBSan: clang
# takes minutes to instrument the AVX-512 GEMM tiles, and the fuzzers drive the parsers and the CLI, which keep both;
# make test-sanitize builds the kernels with both sanitizers.
FUZZ_LIB_SRC := $(filter-out src/blocks/team.c src/blocks/train.c src/model/scoring.c %_neon.c %_neonbf16.c,$(wildcard src/kernels/*.c src/blocks/*.c src/data/*.c src/model/*.c)) \
                src/cli/args.c
FUZZ_LIB_OBJ := $(FUZZ_LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_BIN := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

$(FUZZ_BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_BASE_CFLAGS) -fsanitize=fuzzer-no-link -mavx2 -mfma -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_BASE_CFLAGS) -fsanitize=fuzzer-no-link $(AVX512_FLAGS) -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/%_avx512bf16.o: %_avx512bf16.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_BASE_CFLAGS) -fsanitize=fuzzer-no-link $(AVX512BF16_FLAGS) -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/libelbo_fuzz.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c $(wildcard fuzz/*.h) $(FUZZ_BUILD)/libelbo_fuzz.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Ifuzz -fsanitize=fuzzer $< $(FUZZ_BUILD)/libelbo_fuzz.a -lz -lcjson -lsleef -lm -o $@

fuzz-build: check-deps-fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BIN)

fuzz: fuzz-build
	@mkdir -p $(FUZZ_BUILD)/artifacts
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	  echo "fuzz_$$t: $(FUZZ_SECONDS) s (log: $(FUZZ_BUILD)/fuzz_$$t.log)"; \
	  $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=$(FUZZ_TIMEOUT) -rss_limit_mb=$(FUZZ_RSS_MB) \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t- \
	    $(FUZZ_BUILD)/corpus/$$t tests/fuzz_corpus/$$t > $(FUZZ_BUILD)/fuzz_$$t.log 2>&1; rc=$$?; \
	  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|^==[0-9]+==ERROR|^SUMMARY|fuzz check failed' \
	    $(FUZZ_BUILD)/fuzz_$$t.log | sed "s/^/  /"; \
	  if [ $$rc -ne 0 ]; then echo "fuzz_$$t: FAILED (exit $$rc); reproducer in $(FUZZ_BUILD)/artifacts/"; exit 1; fi; \
	done

# make test-sanitize: the whole test suite (the elbo command included) built with AddressSanitizer and
# UndefinedBehaviorSanitizer in $(SANITIZE_BUILD), any report fatal (-fno-sanitize-recover=all, leaks included).
# Three tests are skipped (and counted as skipped): three Fashion-MNIST epochs against PyTorch (4 minutes under ASan),
# the pinned training bits (36 Fashion-MNIST runs, the scalar ones over a minute each under ASan) and the bf16
# conversion's sweep of all 2^32 floats (a minute under ASan; its short-length test checks the buffers' bounds);
# `make test` runs them.
SANITIZE_BUILD ?= build-asan
SANITIZE_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all
SANITIZE_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=1 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ELBO_TEST_SKIP=test_one_epoch_matches_pytorch:test_training_bits_pinned:test_every_isa_matches_reference_on_all_inputs
test-sanitize: check-deps
	@$(SANITIZE_ENV) $(MAKE) --no-print-directory test BUILD=$(SANITIZE_BUILD) OPT=-O1 CFLAGS='$(SANITIZE_FLAGS)'

# make valgrind: memcheck over a short training run of the normal build (synthetic data, a 784-64-8 model,
# 20 steps on one thread with --save-every, then --resume for 10 more), eval and info --load of its checkpoint;
# fails on any error or any byte definitely or indirectly lost, and prints each run's summary. hwloc's x86
# backend is disabled (HWLOC_COMPONENTS=-x86): it refuses to run under valgrind and says so on stderr.
VALGRIND := HWLOC_COMPONENTS=-x86 valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
            --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect --track-origins=yes
VALGRIND_TRAIN := --data synthetic:400 --hidden 64 --latent 8 --batch 32 --threads 1
valgrind: check-deps
	@$(MAKE) --no-print-directory all
	@d=$$(mktemp -d); trap 'rm -rf $$d' EXIT; set -e; \
	 run() { name=$$1; shift; $(VALGRIND) --log-file=$$d/$$name.log "$$@" > /dev/null || \
	         { cat $$d/$$name.log; echo "valgrind: $$name: FAILED"; exit 1; }; \
	         echo "valgrind: $$name: $$(grep -o 'ERROR SUMMARY: [0-9]* errors' $$d/$$name.log);" \
	              "$$(grep -E 'definitely lost|in use at exit' $$d/$$name.log | sed 's/^==[0-9]*== *//' | tr '\n' ' ')"; }; \
	 run train $(BUILD)/elbo train $(VALGRIND_TRAIN) --epochs 2 --steps 20 --save $$d/v.safetensors --save-every 5; \
	 run resume $(BUILD)/elbo train --data synthetic:400 --threads 1 --epochs 2 --steps 30 --resume $$d/v.safetensors --save $$d/v.safetensors; \
	 run eval $(BUILD)/elbo eval --data synthetic:400 --threads 1 --load $$d/v.safetensors; \
	 run info $(BUILD)/elbo info --load $$d/v.safetensors

# ---- test, bench ----
TEST_RUNNER ?=
test: check-deps
	@$(MAKE) --no-print-directory all $(TEST_BIN)
	@scripts/run_tests.sh "$(TEST_RUNNER)" $(TEST_BIN)

check-deps-mpi:
	@command -v $(MPICC) >/dev/null && command -v mpirun >/dev/null || { \
	  echo "elbo: $(MPICC) or mpirun not found: make deps installs Open MPI ($(DEB_PACKAGES_MPI))"; exit 1; }

test-mpi: check-deps-mpi
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory MPI=1 all
	@scripts/test_mpi.sh

bench-mpi: check-deps-mpi
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory MPI=1 all
	@scripts/bench_mpi.sh

test-arm64: check-deps-arm64
	@$(MAKE) --no-print-directory CROSS=aarch64-linux-gnu- cross-tests-build build-aarch64/elbo
	@$(MAKE) --no-print-directory all
	@TEST_JOBS=$${TEST_JOBS:-$$(nproc)} ELBO_TEST_ISAS=$${ELBO_TEST_ISAS-neon} \
	 scripts/run_tests.sh "timeout 900 qemu-aarch64 -cpu max" $(patsubst build/%,build-aarch64/%,$(filter-out build/tests/test_cli_%,$(TEST_SRC:tests/%.c=build/tests/%)))
	@scripts/test_arm64_cli.sh

.PHONY: cross-tests-build
cross-tests-build: $(BUILD)/libelbo.a $(CROSS_TEST_BIN)

# make bench: every row, 5 repetitions of >= 0.1 s each in random interleaved order, medians displayed (the
# JSON keeps every repetition for compare.py's U test). QUICK=1: one short repetition. BENCH_FILTER=regex
# selects rows (--benchmark_filter). Full runs write results/<cpu>-<date>.json, others $(BUILD)/bench/results/.
# BENCH_ARGS passes more flags (any --benchmark_* flag, or --data=SPEC).
BENCH_REPETITIONS ?= 5
TTQ_RUNS ?= 5
BENCH_TTQ_RUNS ?= 3
BENCH_MIN_TIME ?= 0.1
ifneq ($(QUICK),)
BENCH_RUN_ARGS := --benchmark_repetitions=1 --benchmark_min_time=0.01
else
BENCH_RUN_ARGS := --benchmark_repetitions=$(BENCH_REPETITIONS) --benchmark_min_time=$(BENCH_MIN_TIME) \
                  --benchmark_display_aggregates_only=true --benchmark_enable_random_interleaving=true
endif
ifneq ($(BENCH_FILTER),)
BENCH_RUN_ARGS += '--benchmark_filter=$(BENCH_FILTER)'
endif
BENCH_OUT_DIR ?= $(if $(QUICK)$(BENCH_FILTER),$(BUILD)/bench/results,results)
BENCH_ARGS ?=
profile: check-deps
	@$(MAKE) --no-print-directory all
	scripts/profile.sh

# make bench-pytorch: elbo and PyTorch on this machine in one run (scripts/bench_pytorch.py; about 7 minutes):
# samples/s at batch 64/128/256/1024, each side at its best thread configuration, into
# results/pytorch-<cpu>-<date>.{md,json}. BENCH_PYTORCH_ARGS: more options (--rounds, --seconds, --batches, ...).
# Then the GAN at batch 64, 128 and 256 into results/pytorch-gan-<cpu>-<date>.{md,json} (BENCH_PYTORCH_GAN_ARGS), the
# flow at batch 64 and 128 into results/pytorch-flow-<cpu>-<date>.{md,json} (BENCH_PYTORCH_FLOW_ARGS) and
# the diffusion model at batch 128 and 256 into results/pytorch-diffusion-<cpu>-<date>.{md,json}
# (BENCH_PYTORCH_DIFFUSION_ARGS).
BENCH_PYTORCH_ARGS ?=
BENCH_PYTORCH_GAN_ARGS ?=
BENCH_PYTORCH_FLOW_ARGS ?=
BENCH_PYTORCH_DIFFUSION_ARGS ?=
bench-pytorch: check-deps
	@$(MAKE) --no-print-directory all
	/usr/bin/python3 scripts/bench_pytorch.py --out-dir results $(BENCH_PYTORCH_ARGS)
	/usr/bin/python3 scripts/bench_pytorch.py --out-dir results --model gan --batches 64,128,256 $(BENCH_PYTORCH_GAN_ARGS)
	/usr/bin/python3 scripts/bench_pytorch.py --out-dir results --model flow --batches 64,128 --samples 40000 \
	  $(BENCH_PYTORCH_FLOW_ARGS)
	/usr/bin/python3 scripts/bench_pytorch.py --out-dir results --model diffusion --batches 128,256 --samples 6000 \
	  --seconds 3 $(BENCH_PYTORCH_DIFFUSION_ARGS)

time-to-quality: check-deps
	@$(MAKE) --no-print-directory all
	/usr/bin/python3 scripts/time_to_quality.py --runs $(TTQ_RUNS) --out-dir results

report: check-deps
	/usr/bin/python3 scripts/report.py --results results --out results/report

# Full runs (neither QUICK nor BENCH_FILTER) end with the time to quality, elbo vs PyTorch (BENCH_TTQ_RUNS runs
# each, the median counts; about 40 s; BENCH_TTQ_RUNS=0 leaves it out), written beside the benchmark JSON as
# ttq-<cpu>-<date>.json. `make time-to-quality` runs TTQ_RUNS (5) each.
bench: check-deps
	@$(MAKE) --no-print-directory all $(BUILD)/bench/elbo_bench
	$(BUILD)/bench/elbo_bench --results-dir=$(BENCH_OUT_DIR) $(BENCH_RUN_ARGS) $(BENCH_ARGS)
ifeq ($(QUICK)$(BENCH_FILTER),)
ifneq ($(BENCH_TTQ_RUNS),0)
	@echo; echo "time to quality (test -ELBO <= 31.0 per sample, from process start; $(BENCH_TTQ_RUNS) runs each, fastest and slowest dropped):"
	@/usr/bin/python3 scripts/time_to_quality.py --runs $(BENCH_TTQ_RUNS) --out-dir $(BENCH_OUT_DIR)
endif
endif

# make bench-check: the subset of scripts/bench_check.py (fma_peak, batch-128 GEMM, elementwise, train/b:128;
# about 25 s), 5 repetitions, JSON in $(BUILD)/bench/check.json, compared by efficiency (pct_peak against the
# run's own FMA peak) medians and a U test with the baseline of this CPU: results/baselines/<chip>-<isa>.json, the
# chip config and kernel path `elbo info` names (e.g. zen4-avx512); lists rows that moved by more than
# BENCH_TOLERANCE percent, exits 1 when the single-thread (gated) rows regressed (docs/bench.md: Regression check),
# and 0 with one line saying it skipped when there is no baseline for this chip and path.
# make bench-baseline: the same subset with 15 repetitions, written to this CPU's baseline file.
BENCH_TOLERANCE ?= 5
BENCH_CHECK = /usr/bin/python3 scripts/bench_check.py --bench $(BUILD)/bench/elbo_bench
# this CPU's baseline: results/baselines/<chip config>-<isa chosen>.json
BENCH_BASELINE = results/baselines/$$($(BUILD)/elbo info | awk '/^chip config:/ {c=$$3} /^isa chosen:/ {i=$$3} END {print c "-" i}').json
bench-check: check-deps
	@$(MAKE) --no-print-directory all $(BUILD)/bench/elbo_bench
	@b=$(BENCH_BASELINE); if [ ! -f "$$b" ]; then \
	  echo "bench-check: skipped: no baseline $$b for this chip and kernel path (make bench-baseline writes it)"; \
	else $(BENCH_CHECK) --baseline "$$b" --out $(BUILD)/bench/check.json --tolerance $(BENCH_TOLERANCE); fi

bench-baseline: check-deps
	@$(MAKE) --no-print-directory all $(BUILD)/bench/elbo_bench
	@mkdir -p results/baselines
	$(BENCH_CHECK) --update-baseline --baseline $(BENCH_BASELINE)

# make bench-check-rates: how often bench-check fails on unchanged code (false alarms) and on a planted regression
# (every GEMM call BENCH_SLOWDOWN_PCT % slower: build/bench/elbo_bench_slowdown): BENCH_RATES_RUNS runs of each,
# alternating, their JSON and rates.md in $(BENCH_RATES_DIR) (about 50 s per pair of runs).
BENCH_RATES_RUNS ?= 20
BENCH_SLOWDOWN_PCT ?= 10
BENCH_RATES_DIR ?= $(BUILD)/bench/rates
bench-check-rates: check-deps
	@$(MAKE) --no-print-directory all $(BUILD)/bench/elbo_bench $(BUILD)/bench/elbo_bench_slowdown
	/usr/bin/python3 scripts/bench_check_rates.py --runs $(BENCH_RATES_RUNS) --slowdown-pct $(BENCH_SLOWDOWN_PCT) \
	  --out-dir $(BENCH_RATES_DIR) --baseline $(BENCH_BASELINE)

# make bench-ab BASE=<rev>: the library built from revision BASE (default HEAD) against the working tree's, in one
# process (bench/ab/gemm_ab.c): every single-threaded GEMM row of the bench (fp32, then bf16 where the CPU runs it),
# AB_ROUNDS rounds alternating the two
# builds, the median of the per-round tree/base rate ratios with its quartiles, and whether C is the same bits
# (AB_SAME_BITS=1: exit 1 when it is not). AB_FILTER: a regex over the row names (e.g. 'wgrad|square'). About a
# minute; the JSON is $(AB_DIR)/ab.json (docs/bench.md: Comparing two builds).
BASE ?= HEAD
AB_ROUNDS ?= 21
AB_FILTER ?=
AB_SAME_BITS ?= 0
AB_DIR := $(BUILD)/ab
bench-ab: check-deps
	@$(MAKE) --no-print-directory $(BUILD)/libelbo.a
	@scripts/ab_build_base.sh '$(BASE)' $(AB_DIR)
	@scripts/ab_prefix.sh base $(AB_DIR)/base.a $(AB_DIR)/base.o
	@scripts/ab_prefix.sh tree $(BUILD)/libelbo.a $(AB_DIR)/tree.o elbo_operand_f32 elbo_operand_bf16
	@$(CC) $(CFLAGS_BASE) $(CFLAGS) -Ibench bench/ab/gemm_ab.c $(AB_DIR)/base.o $(AB_DIR)/tree.o -llapacke -lpng \
	  $(LDLIBS_BASE) -o $(AB_DIR)/gemm_ab
	$(AB_DIR)/gemm_ab --rounds=$(AB_ROUNDS) $(if $(AB_FILTER),'--filter=$(AB_FILTER)') \
	  $(if $(filter 1,$(AB_SAME_BITS)),--same-bits) --json=$(AB_DIR)/ab.json

# make classifier: the reference classifier that scores generated images (elbo eval --classifier), trained once:
# its training is bitwise the same for any thread count and x86 ISA, so its FD figures compare across such machines
# (delete the file to train it again).
CLASSIFIER := $(BUILD)/classifier.safetensors
classifier: check-deps
	@$(MAKE) --no-print-directory all $(CLASSIFIER)

$(CLASSIFIER): | $(BUILD)/elbo
	$(BUILD)/elbo train --model classifier --epochs 20 --seed 1 --save $@

# make zoo: `elbo zoo` (src/cli/zoo_cmd.c; elbo zoo --help) with the reference classifier, trained first when missing;
# it draws results/zoo-<cpu>-<date>.png with scripts/zoo_figure.py. ZOO_QUICK=1: --quick, into $(BUILD)/zoo/.
ZOO_ARGS ?=
ZOO_OUT_DIR ?= $(if $(filter 1,$(ZOO_QUICK)),$(BUILD)/zoo,results)
zoo: check-deps
	@$(MAKE) --no-print-directory all $(CLASSIFIER)
	$(BUILD)/elbo zoo --classifier $(CLASSIFIER) --out-dir $(ZOO_OUT_DIR) $(if $(filter 1,$(ZOO_QUICK)),--quick) $(ZOO_ARGS)

clean:
	rm -rf build build-*

help:
	@sed -n '1,/^$$/p' Makefile

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(BENCH_OBJ:.o=.d) $(FUZZ_LIB_OBJ:.o=.d)
