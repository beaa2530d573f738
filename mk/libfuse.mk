# libfuse3 (included by the Makefile). FUSE passthrough needs libfuse >= 3.17.
#
# - The system's libfuse3 is >= 3.17: it is used as is (pkg-config fuse3);
#   FUSE_DEP is empty and libfuse-deps does nothing.
# - Otherwise (Debian 12 has 3.14): `make deps` ends with `make libfuse-deps`,
#   which runs mk/libfuse-build.sh: Debian's own fuse3 >= 3.17 source package,
#   fetched through apt with a private state and a source list derived from
#   the machine's archive, built with meson + ninja as a static library into
#   build/libfuse. The binary then needs no newer shared libfuse at run time
#   (only the system's fusermount3, for unprivileged mounts).
#   The private build sits in build/ whatever BUILD is (build, build/san, ...),
#   so every build flavour shares it; `make clean` keeps it, `make distclean`
#   removes it. FUSE_DEP is its stamp: every object depends on it, so a plain
#   `make` on a fresh clone builds libfuse first (the script needs no root;
#   it says to run `make deps` when a build tool is missing), and every
#   object is rebuilt after libfuse is (re)built. FUSE_CFLAGS and FUSE_LIBS
#   are read from its fuse3.pc when first used, after the stamp exists.
#
# Provides FUSE_CFLAGS, FUSE_LIBS, FUSE_DEP and the libfuse-deps target.

LIBFUSE_MIN := 3.17
LIBFUSE_ROOT := build
LIBFUSE_DIR := $(LIBFUSE_ROOT)/libfuse
LIBFUSE_STAMP := $(LIBFUSE_DIR)/.stamp

.PHONY: libfuse-deps

ifeq ($(shell pkg-config --atleast-version=$(LIBFUSE_MIN) fuse3 2>/dev/null && echo y),y)

FUSE_CFLAGS := $(shell pkg-config --cflags fuse3)
FUSE_LIBS := $(shell pkg-config --libs fuse3)
FUSE_DEP :=
libfuse-deps:
	@:

else

# Only our fuse3.pc: PKG_CONFIG_LIBDIR replaces the system's search path.
LIBFUSE_PKGCONFIG := PKG_CONFIG_LIBDIR=$(CURDIR)/$(LIBFUSE_DIR)/lib/pkgconfig \
	PKG_CONFIG_PATH= pkg-config
# Recursive, evaluated once on first use (by then the stamp rule has run).
FUSE_CFLAGS = $(eval FUSE_CFLAGS := $(shell $(LIBFUSE_PKGCONFIG) --cflags fuse3))$(FUSE_CFLAGS)
FUSE_LIBS = $(eval FUSE_LIBS := $(shell $(LIBFUSE_PKGCONFIG) --static --libs fuse3))$(FUSE_LIBS)
FUSE_DEP := $(LIBFUSE_STAMP)

libfuse-deps:
	$(Q)sh mk/libfuse-build.sh $(LIBFUSE_ROOT) $(LIBFUSE_MIN)

$(LIBFUSE_STAMP):
	@echo "  LIBFUSE $(LIBFUSE_DIR) (the system's libfuse3 is older than $(LIBFUSE_MIN); about a minute, once)"
	$(Q)sh mk/libfuse-build.sh $(LIBFUSE_ROOT) $(LIBFUSE_MIN)

endif
