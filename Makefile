# qsup: QEMU/KVM guest supervisor.  See README.md.
#
#   make            build libqmp.a, qsupd, qsupctl and the test programs
#                   (and prove that libqmp builds alone: see qmp-alone)
#   make check      install missing Debian packages, build, run every test
#   make asan       the same suite under ASan+UBSan (objects in build/asan)
#   make run        the main job: boot the demo guest in the foreground
#   make install    PREFIX=/usr/local DESTDIR=
#
# pkg-config runs inside recipes (recursive variables), so a fresh machine can
# install the packages first and then build in a sub-make.

BUILD    ?= build
GUESTDIR ?= build/guest
PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc
SAN      ?=
PKGS      = libuv jansson inih libsystemd
OPT      ?= -O2

WARN      = -Wall -Wextra -Wpedantic -Werror -Wstrict-prototypes -Wmissing-prototypes -Wshadow
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))
CMOCKA_LIBS = $(shell pkg-config --libs cmocka)
# supervisor/ is layered, one folder per layer, lowest first (see README,
# Layout; tests/scripts/test-layers.sh checks who includes whom).
SV_LAYERS = lib profile host guest features daemon ctl
SV_INC    = $(addprefix -Isupervisor/,$(SV_LAYERS))
ALL_CFLAGS = -std=gnu11 $(OPT) -g $(WARN) $(SAN) -D_GNU_SOURCE -Iqmp $(SV_INC) -Itests/lib \
	$(PKG_CFLAGS) $(CFLAGS)
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

.PHONY: all tests check asan run install clean deps guest fuzz fuzz-build FORCE qmp-alone

all: $(LIBQMP) qmp-alone $(PROGS) $(TOOLS)

tests: all $(TESTS)

deps:
	@sh contrib/install-deps.sh

guest:
	@sh tests/guest/build.sh $(GUESTDIR)

check:
	@sh contrib/install-deps.sh
	@$(MAKE) --no-print-directory tests guest
	@sh tests/run.sh $(BUILD)

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
	$(shell pkg-config --cflags libuv jansson) $(CFLAGS)

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

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib \
		$(DESTDIR)$(PREFIX)/include/qsup $(DESTDIR)$(PREFIX)/share/man/man5 \
		$(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0644 $(LIBQMP) $(DESTDIR)$(PREFIX)/lib/
	install -m 0644 qmp/qmp.h qmp/qmp_parse.h $(DESTDIR)$(PREFIX)/include/qsup/
	$(if $(wildcard $(BUILD)/qsupd),install -m 0755 $(BUILD)/qsupd $(DESTDIR)$(PREFIX)/sbin/)
	$(if $(wildcard $(BUILD)/qsupctl),install -m 0755 $(BUILD)/qsupctl $(DESTDIR)$(PREFIX)/bin/)
	for m in $(wildcard man/*.3); do install -d $(DESTDIR)$(PREFIX)/share/man/man3; install -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man3/; done
	for m in $(wildcard man/*.5); do install -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man5/; done
	for m in $(wildcard man/*.8); do install -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man8/; done

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj $(BUILD)/qmp-alone $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
