# artifactfs - plain Makefile (STYLE.md "Build").
#
#   make            build build/artifactfs (quiet; V=1 shows commands)
#   make deps       install missing Debian packages (root, apt-get)
#   make check      deps, then ASan+UBSan build, unit tests, integration tests
#   make demo       deps, then the main job end to end on loopback
#   make bench      benchmarks (not part of check); see docs/BENCHMARKS.md
#   make fuzz       libFuzzer targets (clang) in build/fuzz/, FUZZ_SECONDS (60) each
#   make tsan       ThreadSanitizer build and run of the threaded code (in check)
#   make install    PREFIX=/usr/local DESTDIR=
#   make uninstall  remove what install put in place
#   make help       every target, one line each

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= /sbin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/artifactfs
UNITDIR ?= /etc/systemd/system
DESTDIR ?=
BUILD ?= build
SAN ?= 0
CC ?= cc

ifeq ($(V),1)
Q :=
else
Q := @
endif

# Debian packages needed to build, test and demo (make deps).
DEB_PKGS := build-essential pkg-config libfuse3-dev fuse3 libcurl4-openssl-dev \
	libssl-dev libxxhash-dev liblmdb-dev libcmocka-dev libjansson-dev \
	libinih-dev nginx docker-registry curl openssl xxd util-linux procps psmisc attr iproute2 \
	python3 logrotate systemd libmicrohttpd-dev \
	meson ninja-build clang libclang-rt-dev squid \
	nodejs npm

PKGS := libcurl openssl libxxhash jansson libmicrohttpd

# The AWS Signature V4 test suite (aws-c-auth), read at run time by
# tests/unit/test_sources_sigv4.c: the project's shared test data beside
# the repository (or beside the worktree folder). Never copied in.
SIGV4_TESTDATA ?= $(firstword $(wildcard $(CURDIR)/../shared/testdata/aws-sigv4 \
	$(CURDIR)/../../shared/testdata/aws-sigv4))
export AF_SIGV4_DIR := $(SIGV4_TESTDATA)

# libfuse: a private static 3.17 build when the system's is older (mk/libfuse.mk).
include mk/libfuse.mk

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LMDB_LIBS := $(shell pkg-config --libs lmdb 2>/dev/null || echo -llmdb)
INIH_LIBS := $(shell pkg-config --libs inih 2>/dev/null || echo -linih)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
	-Wformat=2 -Wno-format-nonliteral -Werror
CFLAGS ?= -O2 -g
# Recursive (=): FUSE_CFLAGS may come from a private libfuse built in this run.
ALL_CFLAGS = -std=gnu11 $(CFLAGS) $(WARN) -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
	-pthread -I. -DAF_BINDIR=\"$(BINDIR)\" $(FUSE_CFLAGS) $(PKG_CFLAGS) -MMD -MP
LIBS = $(FUSE_LIBS) $(PKG_LIBS) $(LMDB_LIBS) $(INIH_LIBS) -lpthread

# The test builds carry the fault-injection points (af_hook, policy/af.h).
ifneq ($(filter 1,$(SAN) $(HOOKS)),)
ALL_CFLAGS += -DAF_TEST_HOOKS
endif
ifeq ($(SAN),1)
ALL_CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
LDSAN := -fsanitize=address,undefined
endif

# One static library per subsystem; dependencies point one way
# (tools -> fs -> control -> cache -> sources -> policy), and so does the
# link order.
SUBSYS := policy sources cache control fs
$(foreach s,$(SUBSYS),$(eval $(s)_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard $(s)/*.c))))
LIB_policy := $(BUILD)/libpolicy.a
LIB_sources := $(BUILD)/libsources.a $(LIB_policy)
LIB_cache := $(BUILD)/libcache.a $(LIB_sources)
LIB_control := $(BUILD)/libcontrol.a $(LIB_cache)
LIB_fs := $(BUILD)/libfs.a $(LIB_control)
LIBAF := $(LIB_fs)

TOOL_SRCS := $(filter-out tools/mount_artifactfs.c,$(wildcard tools/*.c))
TOOL_OBJS := $(TOOL_SRCS:%.c=$(BUILD)/%.o)
# The command's pieces without its main(), for tests/unit/test_tools_*.c.
tools_OBJS := $(filter-out $(BUILD)/tools/artifactfs.o,$(TOOL_OBJS))
LIB_tools := $(BUILD)/libtools.a $(LIB_fs)
$(BUILD)/libtools.a: $(tools_OBJS)
# tests/unit/test_<subsystem>_<what>.c links that subsystem and those below it.
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TESTTOOL_SRCS := $(wildcard tests/tools/*.c)
TESTTOOL_BINS := $(TESTTOOL_SRCS:tests/tools/%.c=$(BUILD)/tests/%)

.PHONY: all deps check unit unit-bins integration demo bench fuzz fuzz-smoke fuzz-build tsan install clean distclean \
	$(foreach s,$(SUBSYS) tools,unit-$(s))
.PHONY: uninstall help units-check
.DEFAULT_GOAL := all
.SECONDARY:

all: $(BUILD)/artifactfs $(BUILD)/mount.artifactfs $(TESTTOOL_BINS)

$(BUILD)/%.o: %.c $(FUSE_DEP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/lib%.a:
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^
$(foreach s,$(SUBSYS),$(eval $(BUILD)/lib$(s).a: $$($(s)_OBJS)))

$(BUILD)/artifactfs: $(TOOL_OBJS) $(LIBAF)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDSAN) $(LDFLAGS) -pthread -o $@ $(TOOL_OBJS) $(LIBAF) $(LIBS)

$(BUILD)/mount.artifactfs: $(BUILD)/tools/mount_artifactfs.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDSAN) $(LDFLAGS) -o $@ $<

# Unit tests: the subsystem is the word after "test_".
define unit_rule
$(BUILD)/tests/test_$(1)_%: $(BUILD)/tests/unit/test_$(1)_%.o $$(LIB_$(1))
	@$$(if $$(Q),echo "  LD      $$@")
	$$(Q)$$(CC) $$(LDSAN) $$(LDFLAGS) -pthread -o $$@ $$< $$(LIB_$(1)) $$(LIBS) $$(CMOCKA_LIBS)
unit-$(1): $$(filter $(BUILD)/tests/test_$(1)_%,$$(UNIT_BINS)) $$(TESTTOOL_BINS)
	$$(Q)sh tests/run_unit.sh $$(filter $(BUILD)/tests/test_$(1)_%,$$(UNIT_BINS))
endef
$(foreach s,$(SUBSYS) tools,$(eval $(call unit_rule,$(s))))

# Test tools: standalone programs (libc only), or linked with the library
# when their name starts with af_lib_.
$(BUILD)/tests/af_lib_%: $(BUILD)/tests/tools/af_lib_%.o $(LIBAF)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDSAN) $(LDFLAGS) -pthread -o $@ $< $(LIBAF) $(LIBS)
$(BUILD)/tests/%: $(BUILD)/tests/tools/%.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDSAN) $(LDFLAGS) -pthread -o $@ $<

deps:
	$(Q)sh mk/deps.sh $(DEB_PKGS)
	$(Q)$(MAKE) --no-print-directory libfuse-deps

# make check: sanitizer build in build/san, then every test.
check: deps
	$(Q)$(MAKE) --no-print-directory BUILD=build/san SAN=1 CFLAGS="-O1 -g" all unit-bins
	$(Q)$(MAKE) --no-print-directory BUILD=build/san SAN=1 CFLAGS="-O1 -g" unit
	$(Q)$(MAKE) --no-print-directory fuzz-smoke
	$(Q)$(MAKE) --no-print-directory BUILD=build/san SAN=1 CFLAGS="-O1 -g" integration
	$(Q)$(MAKE) --no-print-directory BUILD=build/san SAN=1 CFLAGS="-O1 -g" units-check
	$(Q)$(MAKE) --no-print-directory tsan

unit-bins: $(UNIT_BINS) $(TESTTOOL_BINS)

unit: $(UNIT_BINS) $(TESTTOOL_BINS)
	$(Q)AF_BUILD=$(abspath $(BUILD)) sh tests/run_unit.sh $(UNIT_BINS)

integration: all
	$(Q)AF_BUILD=$(abspath $(BUILD)) bash tests/integration/run.sh

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)AF_BUILD=$(abspath $(BUILD)) bash tools/demo.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)AF_BUILD=$(abspath $(BUILD)) bash bench/run.sh

# ThreadSanitizer over the threaded fetch code (issue 11): the cache and
# sources unit tests, and the integration tests that drive many fetches
# and readers at once (and the daemon's own threads: the readiness probe,
# the metrics sampler and server; the catalog's poll and lookup-probe
# threads against the FUSE workers), with a TSan build in build/tsan. Part
# of check.
TSAN_UNITS := $(filter build/tsan/tests/test_cache_% build/tsan/tests/test_sources_% \
	build/tsan/tests/test_control_%,$(UNIT_SRCS:tests/unit/%.c=build/tsan/tests/%))
TSAN_TESTS ?= t_fetch t_races t_faults t_metrics t_service t_remote_probe t_remote_changes
tsan:
	$(Q)$(MAKE) --no-print-directory BUILD=build/tsan CC=clang \
		CFLAGS="-O1 -g -fsanitize=thread" LDFLAGS="-fsanitize=thread" \
		HOOKS=1 all $(TSAN_UNITS)
	$(Q)export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"; \
		AF_BUILD=$(abspath build/tsan) sh tests/run_unit.sh $(TSAN_UNITS) && \
		AF_BUILD=$(abspath build/tsan) AF_TESTS="$(TSAN_TESTS)" \
		bash tests/integration/run.sh

FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_SECONDS ?= 60
# make fuzz: every target over its seed corpus, then FUZZ_SECONDS of
# fuzzing each, one line per target with exec/s and coverage (mk/fuzz-run.sh).
# make check runs the same for 5 s each (fuzz-smoke).
fuzz: fuzz-build
	$(Q)sh mk/fuzz-run.sh $(FUZZ_SECONDS) $(FUZZ_SRCS)
fuzz-smoke: fuzz-build
	$(Q)sh mk/fuzz-run.sh 5 $(FUZZ_SRCS)
fuzz-build: $(FUSE_DEP)
	$(Q)$(MAKE) --no-print-directory BUILD=build/fuzz CC=clang \
		CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" \
		$(foreach s,$(SUBSYS),build/fuzz/lib$(s).a)
	$(Q)for f in $(FUZZ_SRCS); do \
		n=$$(basename $$f .c); echo "  FUZZ    build/fuzz/$$n"; \
		clang -std=gnu11 -O1 -g -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. \
		$(FUSE_CFLAGS) $(PKG_CFLAGS) -o build/fuzz/$$n $$f build/fuzz/libfs.a build/fuzz/libcontrol.a build/fuzz/libcache.a build/fuzz/libsources.a build/fuzz/libpolicy.a $(LIBS) || exit 1; \
	done

# What make install puts where (make uninstall removes the same list).
UNITS := tools/systemd/artifactfs.service tools/systemd/artifactfs-prefetch@.service
INSTALLED := $(BINDIR)/artifactfs $(SBINDIR)/mount.artifactfs \
	$(MANDIR)/man1/artifactfs.1 $(UNITS:tools/systemd/%=$(UNITDIR)/%) \
	/etc/logrotate.d/artifactfs $(DOCDIR)/CONFIG.md $(DOCDIR)/OPERATIONS.md

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)/etc/artifactfs $(DESTDIR)/etc/logrotate.d \
		$(DESTDIR)/var/log/artifactfs $(DESTDIR)$(DOCDIR)
	install -m 0755 $(BUILD)/artifactfs $(DESTDIR)$(BINDIR)/artifactfs
	install -m 0755 $(BUILD)/mount.artifactfs $(DESTDIR)$(SBINDIR)/mount.artifactfs
	install -m 0644 docs/artifactfs.1 $(DESTDIR)$(MANDIR)/man1/artifactfs.1
	for u in $(UNITS); do \
		sed 's|/usr/local/bin|$(BINDIR)|g' $$u >$(DESTDIR)$(UNITDIR)/$$(basename $$u) || exit 1; \
	done
	install -m 0644 tools/artifactfs.logrotate $(DESTDIR)/etc/logrotate.d/artifactfs
	install -m 0644 docs/CONFIG.md docs/OPERATIONS.md $(DESTDIR)$(DOCDIR)/
	test -e $(DESTDIR)/etc/artifactfs/artifactfs.conf || \
		sed 's|/usr/local/share/doc/artifactfs|$(DOCDIR)|g' tools/artifactfs.conf.example \
		>$(DESTDIR)/etc/artifactfs/artifactfs.conf
	@# The daemon's user (DESIGN §13); a package's postinst does this instead.
	if [ -z "$(DESTDIR)" ] && ! id artifactfs >/dev/null 2>&1; then \
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin artifactfs; fi
	@# Its log folder: the daemon makes a new log file there after logrotate.
	if [ -z "$(DESTDIR)" ] && id artifactfs >/dev/null 2>&1; then \
		chown artifactfs:adm /var/log/artifactfs && chmod 2750 /var/log/artifactfs; fi

# systemd-analyze verify on every shipped unit (part of check).
units-check: all
	$(Q)sh mk/units-check.sh $(abspath $(BUILD)) $(UNITS)

# Removes what install put in place; keeps what holds the node's state or
# choices: the config, the registry, the cache, the logs, the user.
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null
	@echo "kept: /etc/artifactfs (config, registry), the cache, /var/log/artifactfs, the artifactfs user"

help:
	@echo "artifactfs - make targets"
	@echo ""
	@echo "  make              build build/artifactfs and build/mount.artifactfs (quiet; V=1 shows"
	@echo "                    commands); builds the private libfuse first when it is missing"
	@echo "  make deps         install the Debian packages needed to build and test (root)"
	@echo "  make check        deps, then the ASan+UBSan build, unit tests, fuzz smoke, integration"
	@echo "                    tests, unit-file verification and the ThreadSanitizer run"
	@echo "  make unit-ROOM    the unit tests of one room: policy sources cache control fs tools"
	@echo "  make integration  the integration tests (AF_TESTS=\"t_fetch t_cli\" for a subset)"
	@echo "  make demo         the main job end to end on loopback"
	@echo "  make bench        benchmarks against curl, rclone, httpdirfs (docs/BENCHMARKS.md)"
	@echo "  make fuzz         build the libFuzzer targets in build/fuzz/ and run each for"
	@echo "                    FUZZ_SECONDS (60): exec/s and coverage per target (make"
	@echo "                    fuzz-smoke: 5 s each, in check; make fuzz-build: build only)"
	@echo "  make tsan         ThreadSanitizer build and run of the threaded code"
	@echo "  make install      install (PREFIX=$(PREFIX) DESTDIR=): $(INSTALLED)"
	@echo "                    and /etc/artifactfs/artifactfs.conf when there is none"
	@echo "  make uninstall    remove what install put in place (config, cache and logs stay)"
	@echo "  make clean        remove build outputs (keeps the private libfuse)"
	@echo "  make distclean    remove build/ entirely"
	@echo ""
	@echo "Variables: BUILD=$(BUILD) SAN=1 (ASan+UBSan) CFLAGS=\"$(CFLAGS)\" V=1 PREFIX DESTDIR"

clean:
	rm -rf build/artifactfs build/mount.artifactfs build/*.a build/policy build/sources \
		build/cache build/control build/fs build/tools build/tests build/san build/fuzz

distclean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
