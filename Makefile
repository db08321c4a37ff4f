# traind — build, test, bench, install.  See README.md.
#
#   make            build/traind, build/trainctl
#   make test       install missing Debian packages, build, run every test
#   make check      the same tests built with AddressSanitizer + UBSan
#   make run        build and start traind on ./var/spool at 127.0.0.1:8080
#   make run-check  check what make run shows (temporary spool, free port)
#   make bench      speed against PyTorch (torch_ref.py) and nginx, in about 5 minutes
#   make bench-all  that and the long studies (bench-forks, bench-scale, bench-optim, bench-laws)
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
libs_of = $(shell pkg-config --libs $(1) 2>/dev/null)

# The builds that test, check, valgrind and fuzz start run on every core,
# unless the make that starts them was given its own -j.
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
SUBMAKE  = $(MAKE) --no-print-directory $(if $(findstring -j,$(MAKEFLAGS)),,-j$(JOBS))

OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wmissing-prototypes -Wno-unused-parameter -Werror=implicit-function-declaration \
           $(LAYER_INC) $(PKG_CFLAGS) $(SYSTEMD_CFLAGS) -DTRAIND_VERSION='"$(VERSION)"' -pthread $(SAN_FLAGS)
LDFLAGS += $(SAN_FLAGS)

# ---- layers ------------------------------------------------------------------
# Each layer is one library; each program and test links only the layers it
# may use, and only their system libraries, so that a call across the line
# fails to link (a core test that called uv_run would find no libuv):
#
#   core     daemon/core/     config (run and daemon), schedule, optim, models, data, checkpoints, runner,
#                             loss-curve laws (libyaml, cJSON, OpenBLAS, GSL)
#   proto    daemon/proto/    progress lines, fork files, the spool's names         (core)
#   worker   daemon/worker/   the training process of a job, the mpirun launcher         (proto, core)
#   service  daemon/service/  the daemon: loop, spool, jobs, HTTP, API  (worker, proto, core; libuv, http-parser, libsystemd)
#   cli      daemon/cli/      trainctl                               (worker, proto, core; libcurl)
#   mpi      daemon/mpi/      traind-mpi-worker                (cli's cmd_run, worker, proto, core; libmpi)
#   tests    tests/lib/       the helpers every suite shares (Check)
#
# and each layer's objects are compiled with only the -I paths of the headers
# they may include, so that an include across the line fails to compile:
# include/traind/ holds the core's headers (every layer's), and
# daemon/LAYER/include/traind/ those of each other layer (all spelled
# "traind/X.h"; scripts/headers-by-layer.sh puts a header in its layer).
# A layer's private headers stay beside its sources (daemon/cli/cli.h).
CORE_INC    := -Iinclude
PROTO_INC   := $(CORE_INC) -Idaemon/proto/include
WORKER_INC  := $(PROTO_INC) -Idaemon/worker/include
SERVICE_INC := $(WORKER_INC) -Idaemon/service/include
CLI_INC     := $(WORKER_INC) -Idaemon/cli/include
MPI_INC     := $(CLI_INC) -Idaemon/mpi/include
TEST_INC    := -Itests/lib
CORE_SRC    := $(wildcard daemon/core/*.c)
PROTO_SRC   := $(wildcard daemon/proto/*.c)
WORKER_SRC  := $(wildcard daemon/worker/*.c)
SERVICE_SRC := $(filter-out daemon/service/main.c,$(wildcard daemon/service/*.c))
CLI_SRC     := $(wildcard daemon/cli/*.c)
UNIT_SRC    := $(wildcard tests/unit/test_*.c)
ITEST_SRC   := $(wildcard tests/integration/test_*.c)
TESTLIB_SRC := $(wildcard tests/lib/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

CORE_LIB    := $(BUILD)/libtraind_core.a
PROTO_LIB   := $(BUILD)/libtraind_proto.a
WORKER_LIB  := $(BUILD)/libtraind_worker.a
SERVICE_LIB := $(BUILD)/libtraind_service.a
TESTLIB     := $(BUILD)/libtraind_test.a

# GSL's minimisers fit the loss-curve laws (law.c); its CBLAS calls go to
# OpenBLAS, so -lgsl comes without -lgslcblas.
CORE_LDLIBS    := $(call libs_of,yaml-0.1 libcjson openblas) -lgsl -lm -pthread
PROTO_LDLIBS   := $(CORE_LDLIBS)
WORKER_LDLIBS  := $(PROTO_LDLIBS)
SERVICE_LDLIBS := $(call libs_of,libuv $(if $(HAVE_SYSTEMD),libsystemd)) -lhttp_parser $(WORKER_LDLIBS)
CLI_LDLIBS     := $(call libs_of,libcurl) $(WORKER_LDLIBS)
TEST_LDLIBS    := $(call libs_of,check)

# The libraries (in link order) of each layer and the layers below it.
CORE_LINK    := $(CORE_LIB)
PROTO_LINK   := $(PROTO_LIB) $(CORE_LINK)
WORKER_LINK  := $(WORKER_LIB) $(PROTO_LINK)
SERVICE_LINK := $(SERVICE_LIB) $(WORKER_LINK)
CLI_LINK     := $(WORKER_LINK)

# Tests by the layer they test (a test not named here is a core test: core only).
PROTO_TESTS   := test_progress
WORKER_TESTS  := test_mpilaunch
SERVICE_TESTS := test_api test_history test_http test_rate_limit test_spool test_asha test_job_index
PROTO_FUZZ    := fuzz_progress
SERVICE_FUZZ  := fuzz_http fuzz_job_index

UNIT_BINS   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
ITEST_BINS  := $(patsubst tests/integration/%.c,$(BUILD)/tests/%,$(ITEST_SRC))
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz-replay/%,$(FUZZ_SRC))

unit_bins = $(patsubst %,$(BUILD)/tests/%,$(filter $(1),$(patsubst tests/unit/%.c,%,$(UNIT_SRC))))
PROTO_UNIT_BINS   := $(call unit_bins,$(PROTO_TESTS))
WORKER_UNIT_BINS  := $(call unit_bins,$(WORKER_TESTS))
SERVICE_UNIT_BINS := $(call unit_bins,$(SERVICE_TESTS))
CORE_UNIT_BINS    := $(filter-out $(PROTO_UNIT_BINS) $(WORKER_UNIT_BINS) $(SERVICE_UNIT_BINS),$(UNIT_BINS))

# Open MPI (data-parallel jobs, parallel.ranks > 1): only build/traind-mpi-worker
# links libmpi, so traind and trainctl build and run without it; without
# mpicc that one program is simply not built (and the MPI tests skip).
MPI_SRC    := $(wildcard daemon/mpi/*.c)
MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell mpicc --showme:link 2>/dev/null)
MPI_WORKER := $(if $(and $(MPI_SRC),$(MPI_LIBS)),$(BUILD)/traind-mpi-worker)

# The -I paths of each object: its layer's (a test's: the layer it links).
unit_obj = $(patsubst $(BUILD)/tests/%,$(BUILD)/obj/tests/unit/%.o,$(1))
fuzz_obj = $(patsubst %,$(BUILD)/obj/tests/fuzz/%.o,$(1))
FUZZ_NAMES := $(patsubst tests/fuzz/%.c,%,$(FUZZ_SRC))
$(call obj,$(CORE_SRC)):                    LAYER_INC = $(CORE_INC)
$(call obj,$(PROTO_SRC)):                   LAYER_INC = $(PROTO_INC)
$(call obj,$(WORKER_SRC)):                  LAYER_INC = $(WORKER_INC)
$(call obj,$(SERVICE_SRC) daemon/service/main.c): LAYER_INC = $(SERVICE_INC)
$(call obj,$(CLI_SRC)):                     LAYER_INC = $(CLI_INC)
$(call obj,$(MPI_SRC)):                     LAYER_INC = $(MPI_INC)
$(call obj,$(TESTLIB_SRC) $(ITEST_SRC) $(wildcard tests/bench/*.c)) \
$(call unit_obj,$(CORE_UNIT_BINS)) \
$(call fuzz_obj,replay_main $(filter-out $(PROTO_FUZZ) $(SERVICE_FUZZ),$(FUZZ_NAMES))): LAYER_INC = $(CORE_INC) $(TEST_INC)
$(call unit_obj,$(PROTO_UNIT_BINS)) $(call fuzz_obj,$(PROTO_FUZZ)):     LAYER_INC = $(PROTO_INC) $(TEST_INC)
$(call unit_obj,$(WORKER_UNIT_BINS)):                                   LAYER_INC = $(WORKER_INC) $(TEST_INC)
$(call unit_obj,$(SERVICE_UNIT_BINS)) $(call fuzz_obj,$(SERVICE_FUZZ)): LAYER_INC = $(SERVICE_INC) $(TEST_INC)
# The fake api_backend of test_api and fuzz_http: a service-layer helper in
# the shared archive, linked only by the service's suites that call it.
$(call obj,tests/lib/tl_fake_backend.c):                                LAYER_INC = $(SERVICE_INC) $(TEST_INC)

# Programs appear as their sources do (the daemon builds once daemon/service/main.c exists).
PROGRAMS := $(BUILD)/trainctl $(if $(wildcard daemon/service/main.c),$(BUILD)/traind) $(MPI_WORKER)

# Keep the objects of test and fuzz binaries (pattern-rule intermediates), so
# a second `make test` does not rebuild them.
.SECONDARY:

.PHONY: all test check run run-check bench bench-forks bench-scale bench-optim bench-laws bench-all deps install uninstall clean fuzz fuzz-build fuzz-deps tests check-layers
all: $(PROGRAMS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(CORE_LIB): $(call obj,$(CORE_SRC))
	@rm -f $@
	$(AR) rcs $@ $^

$(PROTO_LIB): $(call obj,$(PROTO_SRC))
	@rm -f $@
	$(AR) rcs $@ $^

$(WORKER_LIB): $(call obj,$(WORKER_SRC))
	@rm -f $@
	$(AR) rcs $@ $^

$(SERVICE_LIB): $(call obj,$(SERVICE_SRC))
	@rm -f $@
	$(AR) rcs $@ $^

$(TESTLIB): $(call obj,$(TESTLIB_SRC))
	@rm -f $@
	$(AR) rcs $@ $^

# A static library may come twice in a link line (a cycle while a layer
# still reaches up); its prerequisites are listed once.
uniq_libs = $(strip $(if $(1),$(firstword $(1)) $(call uniq_libs,$(filter-out $(firstword $(1)),$(1)))))

$(BUILD)/traind: $(call obj,daemon/service/main.c) $(call uniq_libs,$(SERVICE_LINK))
	$(CC) $(LDFLAGS) -o $@ $(call obj,daemon/service/main.c) $(SERVICE_LINK) $(SERVICE_LDLIBS)

$(call obj,$(MPI_SRC)): CFLAGS += $(MPI_CFLAGS)

# One rank of an N-rank job (daemon/mpi/): the worker and `trainctl run`'s code over dist_mpi.c.
MPI_WORKER_OBJ := $(call obj,$(MPI_SRC) daemon/cli/cmd_run.c daemon/cli/cli_common.c)
$(BUILD)/traind-mpi-worker: $(MPI_WORKER_OBJ) $(call uniq_libs,$(WORKER_LINK))
	$(CC) $(LDFLAGS) $(if $(SAN_FLAGS),-rdynamic) -o $@ $(MPI_WORKER_OBJ) $(WORKER_LINK) $(WORKER_LDLIBS) $(MPI_LIBS)

# trainctl validate --daemon-config uses the daemon config of the core (dconfig.c).
$(BUILD)/trainctl: $(call obj,$(CLI_SRC)) $(call uniq_libs,$(CLI_LINK))
	$(CC) $(LDFLAGS) -o $@ $(call obj,$(CLI_SRC)) $(CLI_LINK) $(CLI_LDLIBS)

# Unit tests, each against its layer and those below; integration tests
# drive the programs over HTTP and link the core's util only.
$(CORE_UNIT_BINS): $(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TESTLIB) $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TESTLIB) $(CORE_LINK) $(CORE_LDLIBS) $(TEST_LDLIBS)

$(PROTO_UNIT_BINS): $(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TESTLIB) $(call uniq_libs,$(PROTO_LINK))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TESTLIB) $(PROTO_LINK) $(PROTO_LDLIBS) $(TEST_LDLIBS)

$(WORKER_UNIT_BINS): $(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TESTLIB) $(call uniq_libs,$(WORKER_LINK))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TESTLIB) $(WORKER_LINK) $(WORKER_LDLIBS) $(TEST_LDLIBS)

$(SERVICE_UNIT_BINS): $(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TESTLIB) $(call uniq_libs,$(SERVICE_LINK))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TESTLIB) $(SERVICE_LINK) $(SERVICE_LDLIBS) $(TEST_LDLIBS)

$(ITEST_BINS): $(BUILD)/tests/%: $(BUILD)/obj/tests/integration/%.o $(TESTLIB) $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TESTLIB) $(CORE_LINK) $(CORE_LDLIBS) $(TEST_LDLIBS)

tests: all $(UNIT_BINS) $(ITEST_BINS) $(FUZZ_REPLAY_BINS)

# The layering, checked: a file compiled with a layer's -I paths cannot
# include a header of a layer above it (nor the cli's, outside trainctl and
# the MPI worker), while the layers above can; code linked as a core test
# (or the proto layer's) that calls libuv must fail to link, and trainctl
# and the MPI worker hold no libuv symbol.
# LAYER_FORBIDDEN: LAYER:header its -I paths must not reach; LAYER_ALLOWED:
# the same the other way (so that a failure above is the -I path's, not the
# header's).  No file under daemon/ may go round them with "../".
LAYER_FORBIDDEN := CORE:progress.h CORE:worker.h CORE:spool.h CORE:supervisor.h CORE:cmd_run.h \
                   PROTO:worker.h PROTO:mpilaunch.h PROTO:spool.h PROTO:cmd_run.h \
                   WORKER:spool.h WORKER:supervisor.h WORKER:jobs.h WORKER:cmd_run.h \
                   CLI:spool.h CLI:supervisor.h CLI:log.h MPI:spool.h MPI:supervisor.h SERVICE:cmd_run.h
LAYER_ALLOWED   := SERVICE:spool.h SERVICE:supervisor.h SERVICE:worker.h PROTO:progress.h CLI:cmd_run.h MPI:cmd_run.h \
                   CLI:worker.h MPI:dist_mpi.h
check-layers: $(TESTLIB) $(CORE_LIB) $(PROTO_LIB) $(BUILD)/trainctl $(MPI_WORKER)
	@mkdir -p $(BUILD)/layers
	@for pair in $(LAYER_FORBIDDEN) $(LAYER_ALLOWED); do \
	    layer=$${pair%%:*}; h=$${pair#*:}; \
	    printf '#include "traind/%s"\n' $$h > $(BUILD)/layers/includes.c; \
	    case "$$layer" in CORE) inc="$(CORE_INC)";; PROTO) inc="$(PROTO_INC)";; WORKER) inc="$(WORKER_INC)";; \
	        SERVICE) inc="$(SERVICE_INC)";; CLI) inc="$(CLI_INC)";; MPI) inc="$(MPI_INC)";; esac; \
	    if $(CC) $(CFLAGS) $$inc -fsyntax-only $(BUILD)/layers/includes.c 2>/dev/null; then got=can; else got=cannot; fi; \
	    case " $(LAYER_ALLOWED) " in *" $$pair "*) want=can;; *) want=cannot;; esac; \
	    if [ $$got != $$want ]; then echo "check-layers: the $$layer layer $$got include traind/$$h"; exit 1; fi; done
	@if grep -rn '^[[:space:]]*#[[:space:]]*include[[:space:]]*"\.\./' daemon; then \
	    echo "check-layers: daemon/ includes by a relative path, around the -I paths"; exit 1; fi
	@echo "check-layers: core, proto, worker and cli cannot include the service's headers (nor core the proto's, nor proto the worker's)"
	@printf '#include <uv.h>\nint main(void) { return (int)uv_version(); }\n' > $(BUILD)/layers/calls_uv.c
	@for layer in "$(CORE_LINK) $(CORE_LDLIBS)" "$(PROTO_LINK) $(PROTO_LDLIBS)"; do \
	    if $(CC) $(CFLAGS) $(LDFLAGS) -o $(BUILD)/layers/calls_uv $(BUILD)/layers/calls_uv.c $(TESTLIB) $$layer \
	        $(TEST_LDLIBS) 2>/dev/null; then \
	        echo "check-layers: a program linked as [$$layer] may call libuv"; exit 1; fi; done
	@echo "check-layers: core and proto do not link libuv"
	@for prog in $(BUILD)/trainctl $(MPI_WORKER); do \
	    n=$$(nm $$prog | grep -c ' uv_'); \
	    if [ "$$n" -ne 0 ]; then echo "check-layers: $$prog has $$n libuv symbols"; exit 1; fi; done
	@echo "check-layers: trainctl$(if $(MPI_WORKER), and traind-mpi-worker) hold no libuv symbol"

deps:
	@scripts/deps.sh

test: deps
	@$(SUBMAKE) tests check-layers
	@BUILD=$(BUILD) scripts/run-tests.sh $(UNIT_BINS) $(ITEST_BINS) $(FUZZ_REPLAY_BINS) scripts/run-browser-tests.sh

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its own build tree.
check: deps
	@$(SUBMAKE) BUILD=build-asan OPT=-O1 \
	    SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" tests
	@TRAIND_TEST_SKIP_SLOW=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    BUILD=build-asan scripts/run-tests.sh \
	    $(patsubst $(BUILD)/%,build-asan/%,$(UNIT_BINS) $(ITEST_BINS) $(FUZZ_REPLAY_BINS))

# The unit tests under Valgrind memcheck.  test_gpt is left to ASan+UBSan
# (make check): its training run takes over five minutes under Valgrind.
VALGRIND_BINS := $(filter-out $(BUILD)/tests/test_gpt,$(UNIT_BINS))
valgrind: deps
	@$(SUBMAKE) tests
	@scripts/valgrind.sh $(VALGRIND_BINS)

run: deps
	@$(SUBMAKE) all
	@scripts/run-local.sh $(BUILD)

# What `make run` shows a new user, checked: every example trains on a
# temporary spool and a free port, its loss falls, and traind stops cleanly.
run-check: deps
	@$(SUBMAKE) all
	@scripts/run-check.sh $(BUILD)

bench: deps
	@$(SUBMAKE) all
	@BUILD=$(BUILD) scripts/bench.sh
	@BUILD=$(BUILD) scripts/bench-optim.sh speed

# The longer studies, each on its own; make bench-all runs bench and them.
bench-forks: deps
	@$(SUBMAKE) all $(BUILD)/bench_forks
	@echo "== forks: 4 warmup-stable-decay cooldowns by forking vs independent runs"
	@$(BUILD)/bench_forks 2000
	@echo "== WSD fork study: 4 cooldowns by forks vs 4 independent runs =="
	@bench/fork_study.sh $(BUILD)

bench-scale: deps
	@$(SUBMAKE) all
	@BUILD=$(BUILD) scripts/bench-scale.sh

bench-optim: deps
	@$(SUBMAKE) all
	@BUILD=$(BUILD) scripts/bench-optim.sh study

# The loss-curve laws: fit time and test-set error on the published curves, and the gpt-tiny
# study (fit on traind's own runs, predict held-out ones, train law optimize's schedule);
# scripts/bench-laws.sh, about 8 minutes.
bench-laws: deps
	@$(SUBMAKE) all
	@BUILD=$(BUILD) scripts/bench-laws.sh

bench-all: bench bench-forks bench-scale bench-optim bench-laws

# The fork study of make bench-forks (tests/bench/bench_forks.c): the core, and tl_strip_time of tests/lib.
$(BUILD)/bench_forks: $(BUILD)/obj/tests/bench/bench_forks.o $(TESTLIB) $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(CORE_LDLIBS) $(TEST_LDLIBS)

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

# A harness links the layer it reads (fuzz_http: service; fuzz_progress: proto; the rest: core).
fuzz_link = $(if $(filter $(SERVICE_FUZZ),$(1)),$(SERVICE_LINK),$(if $(filter $(PROTO_FUZZ),$(1)),$(PROTO_LINK),$(CORE_LINK)))
fuzz_ldlibs = $(if $(filter $(SERVICE_FUZZ),$(1)),$(SERVICE_LDLIBS),$(if $(filter $(PROTO_FUZZ),$(1)),$(PROTO_LDLIBS),$(CORE_LDLIBS)))

.SECONDEXPANSION:
$(BUILD)/fuzz-replay/%: $(BUILD)/obj/tests/fuzz/%.o $(BUILD)/obj/tests/fuzz/replay_main.o $(TESTLIB) \
                        $$(call uniq_libs,$$(call fuzz_link,%))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(BUILD)/obj/tests/fuzz/$*.o $(BUILD)/obj/tests/fuzz/replay_main.o $(TESTLIB) \
	    $(call fuzz_link,$*) $(call fuzz_ldlibs,$*) $(TEST_LDLIBS)

$(BUILD)/bin/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(TESTLIB) $$(call uniq_libs,$$(call fuzz_link,fuzz_%))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $< $(TESTLIB) $(call fuzz_link,fuzz_$*) $(call fuzz_ldlibs,fuzz_$*) \
	    $(TEST_LDLIBS)

fuzz-build:
	@$(SUBMAKE) BUILD=build-fuzz CC=clang OPT=-O1 \
	    SAN_FLAGS="-fsanitize=fuzzer-no-link $(FUZZ_SAN)" $(patsubst %,build-fuzz/bin/fuzz_%,$(FUZZ_HARNESSES))

fuzz: fuzz-deps
	@$(SUBMAKE) fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) scripts/fuzz.sh $(FUZZ_HARNESSES)

fuzz-deps:
	@scripts/deps.sh fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
