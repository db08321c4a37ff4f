# traind — build, test, bench, install.  See README.md.
#
#   make            build/traind, build/trainctl
#   make test       install missing Debian packages, build, run every test
#   make check      the same tests built with AddressSanitizer + UBSan
#   make run        build and start traind on ./var/spool at 127.0.0.1:8080
#   make run-check  check what make run shows (temporary spool, free port)
#   make bench      speed against PyTorch (torch_ref.py) and nginx
#   make install    PREFIX=/usr/local DESTDIR=

PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
CC      ?= cc
VERSION := 0.1.0

PKGS      := yaml-0.1 libuv libcjson openblas check libcurl
HAVE_SYSTEMD := $(shell pkg-config --exists libsystemd 2>/dev/null && echo 1)
ifeq ($(HAVE_SYSTEMD),1)
PKGS      += libsystemd
SYSTEMD_CFLAGS := -DHAVE_LIBSYSTEMD=1
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -Werror=implicit-function-declaration \
           -Iinclude -Itests/lib $(PKG_CFLAGS) $(SYSTEMD_CFLAGS) -DTRAIND_VERSION='"$(VERSION)"' -pthread $(SAN_FLAGS)
LDLIBS  += $(PKG_LIBS) -lhttp_parser -lm -pthread
LDFLAGS += $(SAN_FLAGS)

CORE_SRC    := $(wildcard daemon/core/*.c)
SERVICE_SRC := $(filter-out daemon/service/main.c,$(wildcard daemon/service/*.c))
WORKER_SRC  := $(wildcard daemon/worker/*.c)
CLI_SRC     := $(wildcard daemon/cli/*.c)
UNIT_SRC    := $(wildcard tests/unit/test_*.c)
ITEST_SRC   := $(wildcard tests/integration/test_*.c)
TESTLIB_SRC := $(wildcard tests/lib/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

CORE_LIB    := $(BUILD)/libtraind_core.a
SERVICE_LIB := $(BUILD)/libtraind_service.a
TESTLIB     := $(BUILD)/libtraind_test.a
UNIT_BINS   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
ITEST_BINS  := $(patsubst tests/integration/%.c,$(BUILD)/tests/%,$(ITEST_SRC))
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz-replay/%,$(FUZZ_SRC))

# Open MPI (data-parallel jobs, parallel.ranks > 1): only build/traind-mpi-worker
# links libmpi, so traind and trainctl build and run without it; without
# mpicc that one program is simply not built (and the MPI tests skip).
MPI_SRC    := $(wildcard daemon/mpi/*.c)
MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell mpicc --showme:link 2>/dev/null)
MPI_WORKER := $(if $(and $(MPI_SRC),$(MPI_LIBS)),$(BUILD)/traind-mpi-worker)

# Programs and libraries appear as their sources do (the daemon builds once daemon/service/main.c exists).
PROGRAMS := $(BUILD)/trainctl $(if $(wildcard daemon/service/main.c),$(BUILD)/traind) $(MPI_WORKER)
LINK_LIBS := $(if $(TESTLIB_SRC),$(TESTLIB)) $(if $(SERVICE_SRC)$(WORKER_SRC),$(SERVICE_LIB)) $(CORE_LIB)

# Keep the objects of test and fuzz binaries (pattern-rule intermediates), so
# a second `make test` does not rebuild them.
.SECONDARY:

.PHONY: all test check run run-check bench deps install uninstall clean fuzz fuzz-build fuzz-deps tests
all: $(PROGRAMS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(CORE_LIB): $(call obj,$(CORE_SRC))
	@rm -f $@
	$(AR) rcs $@ $^

$(SERVICE_LIB): $(call obj,$(SERVICE_SRC) $(WORKER_SRC))
	@rm -f $@
	$(AR) rcs $@ $^

$(TESTLIB): $(call obj,$(TESTLIB_SRC))
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/traind: $(call obj,daemon/service/main.c) $(SERVICE_LIB) $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(call obj,$(MPI_SRC)): CFLAGS += $(MPI_CFLAGS)

# One rank of an N-rank job (daemon/mpi/): the worker and `trainctl run`'s code over dist_mpi.c.
$(BUILD)/traind-mpi-worker: $(call obj,$(MPI_SRC) daemon/cli/cmd_run.c daemon/cli/cli_common.c) $(SERVICE_LIB) $(CORE_LIB)
	$(CC) $(LDFLAGS) $(if $(SAN_FLAGS),-rdynamic) -o $@ $^ $(LDLIBS) $(MPI_LIBS)

# trainctl validate --daemon-config uses the daemon's own config parser and validation.
$(BUILD)/trainctl: $(call obj,$(CLI_SRC)) $(SERVICE_LIB) $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LINK_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/integration/%.o $(LINK_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

tests: all $(UNIT_BINS) $(ITEST_BINS) $(FUZZ_REPLAY_BINS)

deps:
	@scripts/deps.sh

test: deps
	@$(MAKE) --no-print-directory tests
	@BUILD=$(BUILD) scripts/run-tests.sh $(UNIT_BINS) $(ITEST_BINS) $(FUZZ_REPLAY_BINS) scripts/run-browser-tests.sh

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its own build tree.
check: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	    SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" tests
	@TRAIND_TEST_SKIP_SLOW=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    BUILD=build-asan scripts/run-tests.sh \
	    $(patsubst $(BUILD)/%,build-asan/%,$(UNIT_BINS) $(ITEST_BINS) $(FUZZ_REPLAY_BINS))

# The unit tests under Valgrind memcheck.  test_gpt is left to ASan+UBSan
# (make check): its training run takes over five minutes under Valgrind.
VALGRIND_BINS := $(filter-out $(BUILD)/tests/test_gpt,$(UNIT_BINS))
valgrind: deps
	@$(MAKE) --no-print-directory tests
	@scripts/valgrind.sh $(VALGRIND_BINS)

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/run-local.sh $(BUILD)

# What `make run` shows a new user, checked: every example trains on a
# temporary spool and a free port, its loss falls, and traind stops cleanly.
run-check: deps
	@$(MAKE) --no-print-directory all
	@scripts/run-check.sh $(BUILD)

bench: deps
	@$(MAKE) --no-print-directory all $(BUILD)/bench_forks
	@BUILD=$(BUILD) scripts/bench.sh
	@echo "== WSD fork study (issue 14): 4 cooldowns by forks vs 4 independent runs =="
	@bench/fork_study.sh $(BUILD)

# The fork study of make bench (tests/bench/bench_forks.c): the core alone.
$(BUILD)/bench_forks: $(BUILD)/obj/tests/bench/bench_forks.o $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

install: all
	scripts/install.sh install "$(DESTDIR)" "$(PREFIX)" "$(BUILD)"

uninstall:
	scripts/install.sh uninstall "$(DESTDIR)" "$(PREFIX)" "$(BUILD)"

clean:
	rm -rf build build-asan build-fuzz

# ---- fuzzing (tests/fuzz/README.md) ----------------------------------------
# make fuzz [FUZZ_SECONDS=60] [FUZZ_JOBS=2] [FUZZ_HARNESSES="config http"]: each
# harness under libFuzzer + ASan + UBSan (clang, build-fuzz/) for FUZZ_SECONDS,
# FUZZ_JOBS at a time, over a copy of its seed corpus; fails on any crash.
# `make test` replays every seed and regression input without libFuzzer
# ($(BUILD)/fuzz-replay/fuzz_<name>, linked with tests/fuzz/replay_main.c).
FUZZ_HARNESSES ?= $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRC))
FUZZ_SECONDS   ?= 60
FUZZ_JOBS      ?= 2
FUZZ_SAN       := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

$(BUILD)/fuzz-replay/%: $(BUILD)/obj/tests/fuzz/%.o $(BUILD)/obj/tests/fuzz/replay_main.o $(LINK_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(LINK_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

fuzz-build:
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang OPT=-O1 \
	    SAN_FLAGS="-fsanitize=fuzzer-no-link $(FUZZ_SAN)" $(patsubst %,build-fuzz/bin/fuzz_%,$(FUZZ_HARNESSES))

fuzz: fuzz-deps
	@$(MAKE) --no-print-directory fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) scripts/fuzz.sh $(FUZZ_HARNESSES)

fuzz-deps:
	@scripts/deps.sh fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
