# qsup: QEMU/KVM guest supervisor.  See README.md.
#
#   make            build libqmp.a, qsupd, qsupctl and the test programs
#                   (and prove that libqmp builds alone: see qmp-alone)
#   make check      install missing Debian packages, build, run every test
#   make asan       the same suite under ASan+UBSan (objects in build/asan)
#   make run        the main job: boot the demo guest in the foreground
#   make install    PREFIX=/usr/local DESTDIR= (see Installation below)
#   make deb        the Debian packages qsup and libqmp-dev, into build/deb/
#   make check-cluster  the Pacemaker resource agent in a two-node cluster
#                   on this machine (namespaces; minutes; root)
#
# pkg-config runs inside recipes (recursive variables), so a fresh machine can
# install the packages first and then build in a sub-make. Any other goal that
# compiles first checks that the libraries are there (see Libraries below).
#
# -Werror is for development and CI: make check and make asan always use it,
# and so does any build in a git checkout. A build from a tarball, or with
# WERROR= (as debian/rules does), only warns. CFLAGS, CPPFLAGS and LDFLAGS
# (dpkg-buildflags' hardening flags, say) come last and win.

BUILD    ?= build
GUESTDIR ?= build/guest
DESTDIR  ?=
CC       ?= cc
SAN      ?=
PKGS      = libuv jansson inih libmnl libmicrohttpd
# Compiled against, not linked: qsupd loads libmicrohttpd (and the TLS stack
# it pulls in) with dlopen only for --metrics-listen, so that every other
# start of qsupd stays as quick as before.
PKGS_DLOPEN = libmicrohttpd
OPT      ?= -O2

WERROR   ?= $(if $(wildcard .git),-Werror)
WARN      = -Wall -Wextra -Wpedantic $(WERROR) -Wstrict-prototypes -Wmissing-prototypes -Wshadow
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(filter-out $(PKGS_DLOPEN),$(PKGS)))
CMOCKA_LIBS = $(shell pkg-config --libs cmocka)
# supervisor/ is layered, one folder per layer, lowest first (see README,
# Layout; tests/scripts/test-layers.sh checks who includes whom).
SV_LAYERS = lib profile host guest features daemon ctl
SV_INC    = $(addprefix -Isupervisor/,$(SV_LAYERS))
ALL_CFLAGS = -std=gnu11 $(OPT) -g $(WARN) $(SAN) -D_GNU_SOURCE -Iqmp $(SV_INC) -Itests/lib \
	$(PKG_CFLAGS) $(CPPFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN) $(LDFLAGS)

QMP_SRC   = $(wildcard qmp/*.c)
SV_MAINS  = supervisor/daemon/main.c supervisor/ctl/qsupctl.c
SV_SRC    = $(filter-out $(SV_MAINS),$(wildcard supervisor/*/*.c))
TLIB_SRC  = $(wildcard tests/lib/*.c)
FUZZ_SRC  = $(wildcard tests/fuzz/fuzz-*.c)
REPLAY_SRC = tests/unit/test-fuzz-replay.c
TEST_SRC  = $(filter-out $(REPLAY_SRC),$(wildcard tests/unit/test-*.c tests/integration/test-*.c))
TOOL_SRC  = $(wildcard tests/tools/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBQMP  = $(BUILD)/libqmp.a
LIBSV   = $(BUILD)/libsv.a
LIBTEST = $(BUILD)/libtest.a
PROGS   = $(BUILD)/qsupd $(BUILD)/qsupctl
TESTS   = $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC)) \
          $(patsubst tests/fuzz/fuzz-%.c,$(BUILD)/tests/unit/test-fuzz-replay-%,$(FUZZ_SRC))
TOOLS   = $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRC))

.SECONDARY:

.PHONY: all programs tests check check-cluster asan run install clean deps deb guest fuzz fuzz-build FORCE \
	qmp-alone

# Libraries: each pkg-config module and the Debian package that has it. A
# goal that compiles stops at once, before any pkg-config noise, when one is
# missing; the goals that install packages themselves are exempt.
DEBPKG_libuv      = libuv1-dev
DEBPKG_jansson    = libjansson-dev
DEBPKG_inih       = libinih-dev
DEBPKG_cmocka     = libcmocka-dev
DEBPKG_libmnl     = libmnl-dev
DEBPKG_libmicrohttpd = libmicrohttpd-dev
NODEPS_GOALS = deps check check-cluster asan run fuzz guest clean deb
# cmocka: only the test programs and tools (all) need it, not make install.
CMOCKA_GOALS = all tests $(BUILD)/tests/% $(BUILD)/tools/%
DEP_GOALS := $(filter-out $(NODEPS_GOALS),$(or $(MAKECMDGOALS),all))
ifneq ($(DEP_GOALS),)
DEP_MODS := $(PKGS) $(if $(filter $(CMOCKA_GOALS),$(DEP_GOALS)),cmocka)
ifeq ($(shell command -v pkg-config),)
DEP_MISSING := pkg-config $(foreach m,$(DEP_MODS),$(or $(DEBPKG_$(m)),$(m)))
else
DEP_MISSING := $(foreach m,$(DEP_MODS),$(if $(shell pkg-config --exists $(m) && echo y),,$(or $(DEBPKG_$(m)),$(m))))
endif
ifeq ($(shell command -v $(firstword $(CC))),)
DEP_MISSING := build-essential $(DEP_MISSING)
endif
ifneq ($(strip $(DEP_MISSING)),)
$(error missing libraries: $(strip $(DEP_MISSING)); run `make deps` first)
endif
endif

all: $(LIBQMP) qmp-alone $(PROGS) $(TOOLS)

# What make install installs, and no test program.
programs: $(LIBQMP) $(PROGS)

tests: all $(TESTS)

deps:
	@sh contrib/install-deps.sh

guest:
	@sh tests/guest/build.sh $(GUESTDIR)

check:
	@sh contrib/install-deps.sh
	@$(MAKE) --no-print-directory tests guest WERROR=-Werror
	@sh tests/run.sh $(BUILD)

# The resource agent (contrib/ocf/qsup) with real Corosync and Pacemaker:
# tests/run.sh runs tests/cluster/*.sh (live migration between two
# qsupd in network namespaces, then a two-node cluster, each node in its
# own namespaces). Minutes: .ci/run runs it after make check.
check-cluster:
	@sh contrib/install-deps.sh
	@$(MAKE) --no-print-directory programs guest WERROR=-Werror
	@QSUP_TEST_JOBS=1 QSUP_TEST_TIMEOUT=1500 QSUP_TEST_LOGS=$(BUILD)/test-logs/cluster \
		sh tests/run.sh $(BUILD) tests/cluster/ocf-migrate.sh tests/cluster/cluster.sh

asan:
	@$(MAKE) --no-print-directory check BUILD=build/asan OPT=-O1 \
		SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"

# libFuzzer harnesses (clang): tests/fuzz/fuzz-NAME.c, linked with every
# supervisor source but main.c and qsupctl.c, and with libqmp's. Each runs
# FUZZ_SECONDS on build/fuzz/corpus-NAME, where new interesting inputs land,
# and tests/fuzz/corpus/NAME, with the dictionary tests/fuzz/NAME.dict if
# there is one; copy good new inputs (minimised: -merge=1, -minimize_crash)
# into tests/fuzz/corpus/NAME so that make check replays them.
#   make fuzz FUZZERS=fuzz-profile FUZZ_SECONDS=600 FUZZ_ARGS=-jobs=2
# clang is installed here only (install-deps.sh fuzz), never for make check.
FUZZ_SECONDS ?= 60
FUZZERS  ?= $(patsubst tests/fuzz/%.c,%,$(FUZZ_SRC))
FUZZ_ARGS ?=
FUZZ_CC  ?= clang
FUZZ_DIR  = build/fuzz
FUZZ_SAN  = -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS = -std=gnu11 -g -O1 $(WARN) $(FUZZ_SAN) -D_GNU_SOURCE -Iqmp $(SV_INC) \
	$(PKG_CFLAGS)
FUZZ_OBJ  = $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(SV_SRC) $(QMP_SRC))

fuzz:
	@sh contrib/install-deps.sh fuzz
	@$(MAKE) --no-print-directory fuzz-build
	@for f in $(FUZZERS); do \
		c=$${f#fuzz-}; \
		mkdir -p $(FUZZ_DIR)/corpus-$$c tests/fuzz/corpus/$$c; \
		d=; [ -f tests/fuzz/$$c.dict ] && d=-dict=tests/fuzz/$$c.dict; \
		echo "fuzz: $$f for $(FUZZ_SECONDS)s"; \
		$(FUZZ_DIR)/$$f -max_total_time=$(FUZZ_SECONDS) $$d $(FUZZ_ARGS) \
			$(FUZZ_DIR)/corpus-$$c tests/fuzz/corpus/$$c || exit 1; \
	done

fuzz-build: $(addprefix $(FUZZ_DIR)/,$(FUZZERS))

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/libfuzz.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_DIR)/fuzz-%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz-%.o $(FUZZ_DIR)/libfuzz.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(PKG_LIBS)

run:
	@sh contrib/install-deps.sh
	@$(MAKE) --no-print-directory all guest
	@sh contrib/run-demo.sh $(BUILD)

# Every object depends on the flags it was built with, kept in
# $(BUILD)/flags: a change of flags (of the include layout, say) rebuilds
# them all. Header dependencies alone would not: a header that moved leaves
# a stale .d naming the old path, and .SECONDARY keeps make from
# rebuilding for a prerequisite that is gone.
$(BUILD)/flags: FORCE
	@mkdir -p $(dir $@)
	@echo '$(ALL_CFLAGS)' | cmp -s - $@ || echo '$(ALL_CFLAGS)' > $@

$(BUILD)/obj/%.o: %.c $(BUILD)/flags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# qmp/ is a library of its own: it must build with nothing but its own
# headers, libuv's and jansson's. So every qmp/*.c is compiled once more into
# $(BUILD)/qmp-alone with -Iqmp as the only include path (no -Isupervisor, no
# -Itests/lib, not even inih's cflags; the user's CFLAGS still apply), with
# the same warnings and -Werror. all depends on it, so a supervisor or test
# header included from qmp/ breaks make, make check and make asan. These
# objects are only the proof: libqmp.a is still built from $(BUILD)/obj.
QMP_ALONE = $(patsubst qmp/%.c,$(BUILD)/qmp-alone/%.o,$(QMP_SRC))
QMP_ALONE_CFLAGS = -std=gnu11 $(OPT) $(WARN) $(SAN) -D_GNU_SOURCE -Iqmp \
	$(shell pkg-config --cflags libuv jansson) $(CPPFLAGS) $(CFLAGS)

qmp-alone: $(QMP_ALONE)

$(BUILD)/qmp-alone/%.o: qmp/%.c
	@mkdir -p $(dir $@)
	$(CC) $(QMP_ALONE_CFLAGS) -MMD -MP -c -o $@ $<

$(LIBQMP): $(call obj,$(QMP_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBSV): $(call obj,$(SV_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $(if $^,$^,)

$(LIBTEST): $(call obj,$(TLIB_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $(if $^,$^,)

$(BUILD)/qsupd: $(call obj,supervisor/daemon/main.c) $(LIBSV) $(LIBQMP)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/qsupctl: $(call obj,supervisor/ctl/qsupctl.c) $(LIBSV) $(LIBQMP)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tools/%: $(BUILD)/obj/tests/tools/%.o $(LIBTEST) $(LIBSV) $(LIBQMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# One replay program per harness: test-fuzz-replay.c with the harness included.
$(BUILD)/obj/tests/unit/test-fuzz-replay-%.o: $(REPLAY_SRC) tests/fuzz/fuzz-%.c $(BUILD)/flags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DFUZZ_HARNESS='"../fuzz/fuzz-$*.c"' -DFUZZ_CORPUS='"$*"' \
		-MMD -MP -c -o $@ $<

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(LIBTEST) $(LIBSV) $(LIBQMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CMOCKA_LIBS)

# Installation. SYSCONFDIR is /etc whatever PREFIX is: qsupd reads
# /etc/qsup/profiles, and systemd's ConfigurationDirectory= and
# EnvironmentFile= are /etc. Units go to $(PREFIX)/lib/systemd/system
# (/usr/local/lib/systemd/system is in systemd's search path too);
# debian/rules passes UNITDIR=/lib/systemd/system and a multiarch LIBDIR.
# An existing $(SYSCONFDIR)/default/qsup is never replaced.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
LIBDIR     ?= $(PREFIX)/lib
LIBEXECDIR ?= $(PREFIX)/libexec
INCLUDEDIR ?= $(PREFIX)/include
DATADIR    ?= $(PREFIX)/share
MANDIR     ?= $(DATADIR)/man
DOCDIR     ?= $(DATADIR)/doc/qsup
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
COMPLETIONDIR ?= $(DATADIR)/bash-completion/completions
# Pacemaker looks for resource agents under /usr/lib/ocf only, whatever
# PREFIX is: contrib/ocf/qsup is ocf:qsup:guest.
OCFDIR     ?= /usr/lib/ocf
PKGCONFIGDIR  ?= $(LIBDIR)/pkgconfig
VERSION    := $(shell sed -n 's/.*define SV_VERSION "\(.*\)".*/\1/p' supervisor/lib/util.h)
SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
	-e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	-e 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	-e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@VERSION@|$(VERSION)|g'
D = $(DESTDIR)

install: programs
	install -d $(D)$(SBINDIR) $(D)$(BINDIR) $(D)$(LIBDIR) $(D)$(PKGCONFIGDIR) \
		$(D)$(INCLUDEDIR)/qsup $(D)$(LIBEXECDIR)/qsup $(D)$(UNITDIR) \
		$(D)$(COMPLETIONDIR) $(D)$(DOCDIR)/examples $(D)$(SYSCONFDIR)/qsup/profiles \
		$(D)$(SYSCONFDIR)/default $(D)$(MANDIR)/man3 $(D)$(MANDIR)/man5 $(D)$(MANDIR)/man8 \
		$(D)$(OCFDIR)/resource.d/qsup
	install -m 0755 $(BUILD)/qsupd $(D)$(SBINDIR)/
	install -m 0755 $(BUILD)/qsupctl $(D)$(BINDIR)/
	install -m 0644 $(LIBQMP) $(D)$(LIBDIR)/
	install -m 0644 qmp/qmp.h qmp/qmp_parse.h $(D)$(INCLUDEDIR)/qsup/
	$(SUBST) qmp/qsup-qmp.pc.in > $(D)$(PKGCONFIGDIR)/qsup-qmp.pc
	chmod 0644 $(D)$(PKGCONFIGDIR)/qsup-qmp.pc
	for u in contrib/systemd/*.in; do \
		f=$(D)$(UNITDIR)/$$(basename $$u .in); \
		$(SUBST) $$u > $$f && chmod 0644 $$f || exit 1; \
	done
	install -m 0755 contrib/qsup-guests $(D)$(LIBEXECDIR)/qsup/
	install -m 0755 contrib/ocf/qsup $(D)$(OCFDIR)/resource.d/qsup/guest
	install -m 0644 contrib/bash-completion/qsupctl $(D)$(COMPLETIONDIR)/
	install -m 0644 profiles/*.ini $(D)$(DOCDIR)/examples/
	[ -e $(D)$(SYSCONFDIR)/default/qsup ] || \
		install -m 0644 contrib/default/qsup $(D)$(SYSCONFDIR)/default/qsup
	install -m 0644 man/*.3 $(D)$(MANDIR)/man3/
	install -m 0644 man/*.5 $(D)$(MANDIR)/man5/
	install -m 0644 man/*.8 $(D)$(MANDIR)/man8/

# The Debian packages, built with dpkg-buildpackage -b from a copy of the
# tree (the worktree stays clean); the .deb, .changes and .buildinfo files
# land in build/deb/, the copy's parent. debian/rules gets none of this
# make's variables (MAKEFLAGS): the package is built as a packager would.
DEB_DIR ?= build/deb
deb:
	@sh contrib/install-deps.sh deb
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/qsup-$(VERSION)
	tar -cf - --exclude=./build --exclude=./.git --exclude='./$(BUILD)' . | \
		tar -xf - -C $(DEB_DIR)/qsup-$(VERSION)
	cd $(DEB_DIR)/qsup-$(VERSION) && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
		dpkg-buildpackage -b -us -uc
	@ls $(DEB_DIR)/*.deb

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj $(BUILD)/qmp-alone $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
