# Ridgeline: GNU Make build. `make help` lists the targets.
#
# Layout of outputs (all under build/, ignored by git):
#   build/ridgeline            the program
#   build/obj/...              objects and their .d header dependencies
#   build/tests/...            test programs
#   build/asan/...             the same tree built with ASan+UBSan (make test builds both)

.DEFAULT_GOAL := all
SHELL := /bin/bash

BUILD   ?= build
SAN     ?= 0
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR ?= $(PREFIX)/lib/systemd/system
DATADIR ?= /var/lib/ridgeline
DESTDIR ?=

VERSION := $(shell cat VERSION)
GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

# `make V=1` shows full command lines.
V ?= 0
Q := $(if $(filter 1,$(V)),,@)

CONFIG_MK := build/config.mk
# Linked into the program; the other packages the product needs are checked by scripts/deps.sh.
PKGS      := rocksdb libmicrohttpd jansson libsodium libcurl libutf8proc libpng OpenCL libfprint-2
TEST_PKGS := cmocka
# The program's allocator: jemalloc (many threads allocating and freeing small JSON values: glibc's malloc
# was a sixth of a $match's CPU; jemalloc serves 20% more of them). Not under the sanitizers, which bring
# their own.
ALLOC_PKG := jemalloc

CC      ?= cc
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
OPT     := -O2 -g
SANFLAGS :=
ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all
OPT     := -O1 -g -fno-omit-frame-pointer $(SANFLAGS)
endif
CPPFLAGS += -I. -MMD -MP
CFLAGS  += $(CSTD) $(WARN) $(OPT) -pthread
LDFLAGS += $(SANFLAGS) -pthread

ifeq ($(filter clean help,$(MAKECMDGOALS)),)
include $(CONFIG_MK)
endif

# A failed pkg-config check forces the configuration (and so scripts/deps.sh) to run again.
PKG_OK := $(shell pkg-config --exists $(PKGS) $(TEST_PKGS) $(ALLOC_PKG) 2>/dev/null && echo yes)
ifneq ($(PKG_OK),yes)
$(CONFIG_MK): FORCE
endif
$(CONFIG_MK): scripts/deps.sh Makefile
	@scripts/deps.sh
	@mkdir -p $(@D)
	@{ echo "PKG_CFLAGS := $$(pkg-config --cflags $(PKGS))"; \
	   echo "PKG_LIBS := $$(pkg-config --libs $(PKGS)) -lm"; \
	   echo "ROCKSDB_VERSION := $$(pkg-config --modversion rocksdb)"; \
	   echo "ALLOC_LIBS := $$(pkg-config --libs $(ALLOC_PKG))"; \
	   echo "TEST_CFLAGS := $$(pkg-config --cflags $(TEST_PKGS))"; \
	   echo "TEST_LIBS := $$(pkg-config --libs $(TEST_PKGS))"; } > $@.tmp && mv $@.tmp $@

# Layers, lowest first. Each folder's README says what it may include.
LIB_DIRS := common kernels store demographics biometrics device registry ingest api bench
LIB_SRCS := $(sort $(wildcard $(addsuffix /*.c,$(LIB_DIRS))))
CMD_SRCS := $(sort $(wildcard cmd/*.c))
UNIT_SRCS  := $(sort $(wildcard tests/unit/test_*.c))
INTEG_SRCS := $(sort $(wildcard tests/integration/test_*.c))
HARNESS_SRCS := tests/harness.c tests/virtual_reader.c

OBJ := $(BUILD)/obj
LIB := $(BUILD)/libridgeline.a
BIN := $(BUILD)/ridgeline
LIB_OBJS := $(LIB_SRCS:%.c=$(OBJ)/%.o)
CMD_OBJS := $(CMD_SRCS:%.c=$(OBJ)/%.o)
HARNESS_OBJS := $(HARNESS_SRCS:%.c=$(OBJ)/%.o)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
INTEG_BINS := $(INTEG_SRCS:tests/integration/%.c=$(BUILD)/tests/%)

# Keep objects that pattern chains would otherwise delete as intermediates.
.SECONDARY:

.PHONY: all deps run test tests test-fast check-layers install uninstall clean help bench bench-fingerprint FORCE
FORCE:

all: $(BIN)

deps:
	@scripts/deps.sh

$(OBJ)/%.o: %.c $(CONFIG_MK)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) $(if $(findstring tests/,$<),$(TEST_CFLAGS)) -c $< -o $@

# Only this object knows the version, so a new commit relinks instead of rebuilding everything.
$(OBJ)/common/rl_version.o: CPPFLAGS += -DRL_VERSION='"$(VERSION)"' -DRL_GIT_REV='"$(GIT_REV)"'
$(OBJ)/common/rl_version.o: VERSION
$(OBJ)/cmd/cmd_version.o: CPPFLAGS += -DRL_ROCKSDB_VERSION='"$(ROCKSDB_VERSION)"'

# OpenCL kernels travel inside the program as string constants.
CL_SRCS := $(sort $(wildcard kernels/*.cl))
GEN_CL  := $(OBJ)/gen/kern_cl_sources.c
# So does the OpenAPI document of the operator API, kept as plain JSON.
GEN_OPENAPI := $(OBJ)/gen/api_openapi_json.c
# And the enrolment desk's web app: every file under web/ (api/api_ui.c serves them under /ui/). The
# folders are prerequisites too: adding, removing or renaming a file changes its folder's time, so a new
# file older than the generated one still counts. Names with spaces are left to the script to refuse.
WEB_DIR := web
WEB_INPUTS := $(shell find $(WEB_DIR) 2>/dev/null | grep -v '[[:space:]]' | LC_ALL=C sort)
GEN_WEB := $(OBJ)/gen/web_assets.c
GEN_OBJS := $(GEN_CL:.c=.o) $(GEN_OPENAPI:.c=.o) $(GEN_WEB:.c=.o)
$(GEN_CL): $(CL_SRCS) scripts/embed-cl.sh
	@mkdir -p $(@D)
	$(Q)scripts/embed-cl.sh $@ $(CL_SRCS)
$(GEN_OPENAPI): api/openapi.json scripts/embed-text.sh
	@mkdir -p $(@D)
	$(Q)scripts/embed-text.sh $@ api_openapi_json api/openapi.json
$(GEN_WEB): $(WEB_INPUTS) scripts/embed-web.sh
	@mkdir -p $(@D)
	$(Q)scripts/embed-web.sh $@ $(WEB_DIR)
$(GEN_WEB:.c=.o): api/api_ui_assets.h
$(OBJ)/gen/%.o: $(OBJ)/gen/%.c $(CONFIG_MK)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS) $(GEN_OBJS)
	@mkdir -p $(@D)
	@rm -f $@
	@$(if $(Q),echo "  AR      $@")
	$(Q)$(AR) rcs $@ $^

$(BIN): $(CMD_OBJS) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(CMD_OBJS) $(LIB) $(PKG_LIBS) $(if $(filter 1,$(SAN)),,$(ALLOC_LIBS))

# The gallery's test injects OpenCL faults between the gallery and the device.
$(BUILD)/tests/test_bio_gallery: LDFLAGS += -Wl,--wrap=kern_pf_ocl_write -Wl,--wrap=kern_pf_ocl_scores \
                                     -Wl,--wrap=kern_pf_ocl_reserve

$(BUILD)/tests/%: $(OBJ)/tests/unit/%.o $(HARNESS_OBJS) $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(HARNESS_OBJS) $(LIB) $(PKG_LIBS) $(TEST_LIBS)

$(BUILD)/tests/%: $(OBJ)/tests/integration/%.o $(HARNESS_OBJS) $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(HARNESS_OBJS) $(LIB) $(PKG_LIBS) $(TEST_LIBS)

tests: $(BIN) $(UNIT_BINS) $(INTEG_BINS)

# The appliance on its embedded defaults: ./data on 127.0.0.1:8080.
run: deps $(BIN)
	$(BIN) serve --listen 127.0.0.1:8080 --data ./data

# Every test, on the normal build and on the ASan+UBSan build.
test: deps check-layers
	@$(MAKE) --no-print-directory tests
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=1 tests
	@scripts/run-tests.sh build build/asan

# Only the normal build: quicker while working.
test-fast: deps check-layers tests
	@scripts/run-tests.sh build

check-layers:
	@scripts/check-layers.sh

# Long benchmarks, kept out of `make test`. BENCH_SIZES overrides the registry sizes.
BENCH_SIZES ?= 100000 1000000
BENCH_MATCH_SIZES ?= 100000 1000000
BENCH_IDENTIFY_SIZES ?= 10000 100000 1000000
bench: bench-fingerprint bench-http
	@for n in $(BENCH_SIZES); do $(BIN) bench register --size $$n || exit 1; echo; done
	@for n in $(BENCH_MATCH_SIZES); do $(BIN) bench match --size $$n || exit 1; echo; done
	@for n in $(BENCH_IDENTIFY_SIZES); do RIDGELINE_TESTDATA=$(RIDGELINE_TESTDATA) $(BIN) bench identify --size $$n || exit 1; echo; done
	@RIDGELINE_TESTDATA=$(RIDGELINE_TESTDATA) bench/identify_paths.sh $(BIN) "$(BENCH_IDENTIFY_SIZES)"

# Fingerprint accuracy and speed on the FVC2002 B-sets, with a DET curve per set (gnuplot).
RIDGELINE_TESTDATA ?= ../shared/data
FVC_DIR  := $(RIDGELINE_TESTDATA)/fingerprints/fvc2002
FVC_SETS := DB1_B DB2_B DB3_B DB4_B
BENCH_OUT := build/bench
bench-fingerprint: deps $(BIN)
	@scripts/deps.sh --bench
	@mkdir -p $(BENCH_OUT)
	$(BIN) fingerprint eval $(addprefix $(FVC_DIR)/,$(FVC_SETS)) --det-dir $(BENCH_OUT)
	@for s in $(FVC_SETS); do \
	  gnuplot -c bench/fingerprint_det.gp $(BENCH_OUT)/det_$$s.dat $(BENCH_OUT)/det_$$s.png $$s || exit 1; \
	  echo "wrote $(BENCH_OUT)/det_$$s.png"; done

# The HTTP API under load: wrk on loopback against read, create and $match over a 100k registry
# (bench/http/run.sh; BENCH_HTTP_SIZE, BENCH_HTTP_SECONDS, BENCH_HTTP_CONNECTIONS).
.PHONY: bench-http
bench-http: deps $(BIN)
	@scripts/deps.sh --bench
	@RIDGELINE_TESTDATA=$(RIDGELINE_TESTDATA) bench/http/run.sh $(BIN)

install: $(BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/ridgeline $(DESTDIR)$(UNITDIR)
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/ridgeline
	install -m 0644 etc/ridgeline.json $(DESTDIR)$(SYSCONFDIR)/ridgeline/ridgeline.json
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@DATADIR@|$(DATADIR)|g' \
	    etc/ridgeline.service.in > $(DESTDIR)$(UNITDIR)/ridgeline.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/ridgeline.service

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/ridgeline $(DESTDIR)$(UNITDIR)/ridgeline.service
	@echo "kept $(DESTDIR)$(SYSCONFDIR)/ridgeline and $(DATADIR): they hold your configuration and patient data"

clean:
	rm -rf build

help:
	@echo "make run        install dependencies, build, serve ./data on 127.0.0.1:8080"
	@echo "make test       install dependencies, build normal + ASan/UBSan, run every test"
	@echo "make test-fast  normal build only"
	@echo "make bench      benchmarks (fingerprints on FVC2002 with DET curves, then registry sizes)"
	@echo "make bench-http the HTTP API under wrk: reads, creates, \$$match over a 100k registry"
	@echo "make install    PREFIX=/usr/local DESTDIR= : program, /etc config, systemd unit"
	@echo "make clean      remove build/"

-include $(LIB_OBJS:.o=.d) $(CMD_OBJS:.o=.d) $(HARNESS_OBJS:.o=.d) \
         $(UNIT_SRCS:tests/unit/%.c=$(OBJ)/tests/unit/%.d) $(INTEG_SRCS:tests/integration/%.c=$(OBJ)/tests/integration/%.d)
