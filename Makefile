# mezzanine: a plain Makefile. Quiet unless V=1.
#   make            build the daemon (mezzanine) and the CLI (mezz)
#   make run        install missing dependencies, build, start on embedded defaults
#   make test       install missing dependencies, build, run every test
#   make bench      run the benchmarks and write docs/BENCHMARKS.md
#   make contracts  compile l1bridge/contracts/Inbox.sol into $(BUILD)/contracts/
#   make fuzz       build and run every fuzz target (libFuzzer, ASan+UBSan)
#   make install    install binaries, units, config and docs under $(DESTDIR)$(PREFIX)
#   SANITIZER=address,undefined   build everything with those sanitizers

CC        ?= cc
PREFIX    ?= /usr/local
DESTDIR   ?=
SANITIZER ?=
comma     := ,

BUILD := build$(if $(SANITIZER),-$(subst $(comma),-,$(SANITIZER)))

ifeq ($(V),1)
Q :=
else
Q := @
endif

PKGS := sqlite3 libsodium libwebsockets jansson inih libcurl libsystemd \
        libsecp256k1 nettle libssl libcrypto libisal libuv

CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
          -Wno-missing-field-initializers -fno-strict-aliasing -pthread -MMD -MP \
          -I. $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lmbedcrypto -lm -pthread
ifneq ($(SANITIZER),)
CFLAGS  += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZER)
endif

# Module libraries: every .c file in a folder, except the programs' mains.
MAINS       := appliance/mezzanine.c appliance/mezz.c
APP_SRC     := $(filter-out $(MAINS),$(wildcard appliance/*.c))
SEQ_SRC     := $(wildcard sequencer/*.c)
DA_SRC      := $(wildcard da/*.c)
L1_SRC      := $(wildcard l1bridge/*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

# The status page (appliance/www/) is compiled into the daemon as byte arrays.
WWW_SRC := $(sort $(wildcard appliance/www/*))
WWW_C   := $(BUILD)/gen/www.c
WWW_O   := $(BUILD)/gen/www.o

LIBAPP := $(BUILD)/libapp.a
LIBSEQ := $(BUILD)/libseq.a
LIBDA  := $(BUILD)/libda.a
LIBL1  := $(BUILD)/libl1.a
LIBS   := $(LIBAPP) $(LIBDA) $(LIBSEQ) $(LIBL1)

DAEMON      := $(BUILD)/mezzanine
DAEMON_TEST := $(BUILD)/mezzanine-test
CLI         := $(BUILD)/mezz

# Criterion unit tests: one binary per folder under tests/.
UNIT_DIRS  := appliance sequencer l1bridge da
UNIT_BINS  := $(foreach d,$(UNIT_DIRS),$(if $(wildcard tests/$(d)/*.c),$(BUILD)/tests/test_$(d)))

BENCH_SRC  := $(wildcard tests/bench/*.c)
BENCH_BINS := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

# The inbox contract: compiled by the pinned npm solc (scripts/install-deps)
# with every bytecode-relevant setting fixed in build.js; never committed.
SOLCJS     ?= .deps/bin/solcjs
CONTRACTS  := $(BUILD)/contracts/Inbox.bin $(BUILD)/contracts/Inbox.abi

FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS  := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(FUZZ_SRC))
FUZZ_TIME  ?= 20

.PHONY: all run test unit integration bench bench-quick fuzz install clean deps tools contracts

all: $(DAEMON) $(CLI) $(DAEMON_TEST)

deps:
	$(Q)scripts/install-deps

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

# Test builds of the daemon compile in the fault hooks (see appliance/fault.h).
$(BUILD)/test-obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC[T]   $<")
	$(Q)$(CC) $(CFLAGS) -DMEZZ_FAULT_HOOKS -c -o $@ $<

$(WWW_C): $(WWW_SRC) scripts/embed-www
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  EMBED   $@")
	$(Q)scripts/embed-www $(WWW_SRC) > $@.tmp && mv $@.tmp $@

$(WWW_O): $(WWW_C)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(LIBAPP): $(call obj,$(APP_SRC)) $(WWW_O)
$(LIBSEQ): $(call obj,$(SEQ_SRC))
$(LIBDA):  $(call obj,$(DA_SRC))
$(LIBL1):  $(call obj,$(L1_SRC))
$(LIBS):
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(DAEMON): $(BUILD)/appliance/mezzanine.o $(LIBS)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(CLI): $(BUILD)/appliance/mezz.o $(LIBS)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(DAEMON_TEST): $(patsubst %.c,$(BUILD)/test-obj/%.o,appliance/mezzanine.c $(APP_SRC)) $(WWW_O) $(LIBDA) $(LIBSEQ) $(LIBL1)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

.SECONDEXPANSION:
$(BUILD)/tests/test_%: $$(call obj,$$(wildcard tests/$$*/*.c)) $(LIBS)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

# The da tests count decode-table builds (tests/da/test_code.c).
$(BUILD)/tests/test_da: LDFLAGS += -Wl,--wrap=ec_init_tables

$(BUILD)/bench/%: $(BUILD)/tests/bench/%.o $(LIBS)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

contracts: $(CONTRACTS)

# One solc run writes both files; the .abi rides on the .bin's rule.
$(BUILD)/contracts/Inbox.bin: l1bridge/contracts/Inbox.sol l1bridge/contracts/build.js
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  SOLC    $<")
	$(Q)node l1bridge/contracts/build.js $(SOLCJS) $< $(dir $@)
$(BUILD)/contracts/Inbox.abi: $(BUILD)/contracts/Inbox.bin

# The message scanner's string check runs over every byte of every
# submission (mostly one long hex string); GCC 12's -O2 cost model leaves
# that loop scalar, the dynamic one vectorises it (-fopt-info-vec).
$(BUILD)/appliance/fastrpc.o $(BUILD)/test-obj/appliance/fastrpc.o: CFLAGS += -fvect-cost-model=dynamic

# The DA benchmark alone links jerasure (a peer measured in the same run);
# jerasure.h includes its galois.h by bare name.
$(BUILD)/tests/bench/da_bench.o: CFLAGS += -I/usr/include/jerasure
$(BUILD)/bench/da_bench: $(BUILD)/tests/bench/da_bench.o $(LIBS)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lJerasure


tools: all $(UNIT_BINS) $(BENCH_BINS) $(CONTRACTS)

run: deps all $(CONTRACTS)
	$(Q)scripts/run-dev $(BUILD)

test: deps
	$(Q)$(MAKE) --no-print-directory tools
	$(Q)scripts/run-tests $(BUILD)

unit: tools
	$(Q)scripts/run-tests $(BUILD) unit

integration: tools
	$(Q)scripts/run-tests $(BUILD) integration

bench: deps
	$(Q)$(MAKE) --no-print-directory tools
	$(Q)scripts/run-bench $(BUILD) full

bench-quick: deps
	$(Q)$(MAKE) --no-print-directory tools
	$(Q)scripts/run-bench $(BUILD) quick

# Fuzz targets link the module sources directly, built by clang with
# libFuzzer, ASan and UBSan in their own folder.
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -DMEZZ_FUZZ -g -O1 -I. -fsanitize=fuzzer,address,undefined \
               $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
build-fuzz/%: tests/fuzz/%.c $(SEQ_SRC) $(L1_SRC) $(DA_SRC) $(APP_SRC) $(WWW_C)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  FUZZ    $@")
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $^ $(LDLIBS)

# Seed corpora of the da fuzz targets (tests/fuzz/seeds/fuzz_da_*), deterministic.
$(BUILD)/tools/da_seeds: $(BUILD)/tests/fuzz/da_seeds.o $(LIBDA) $(LIBSEQ)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

fuzz: deps $(FUZZ_BINS)
	$(Q)scripts/run-fuzz $(FUZZ_TIME) $(FUZZ_BINS)

# Installed layout. Units, sysusers and tmpfiles go where systemd reads them
# whatever PREFIX is; override UNITDIR etc. for other layouts.
UNITDIR     ?= /lib/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d
TMPFILESDIR ?= /usr/lib/tmpfiles.d
SYSCTLDIR   ?= /usr/lib/sysctl.d
CONFDIR     ?= /etc/mezzanine
DOCDIR      ?= $(PREFIX)/share/doc/mezzanine

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(DOCDIR) $(DESTDIR)$(CONFDIR)/profiles \
	           $(DESTDIR)$(UNITDIR)/mezzanine.service.d $(DESTDIR)$(SYSUSERSDIR) \
	           $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(SYSCTLDIR)
	install -m 0755 $(DAEMON) $(CLI) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 firmware-config/mezzanine.conf $(DESTDIR)$(CONFDIR)/mezzanine.conf
	install -m 0644 firmware-config/profiles/*.conf $(DESTDIR)$(CONFDIR)/profiles/
	install -m 0644 firmware-config/sysctl.d/90-mezzanine.conf $(DESTDIR)$(SYSCTLDIR)/
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 systemd/mezzanine.sysusers $(DESTDIR)$(SYSUSERSDIR)/mezzanine.conf
	install -m 0644 systemd/mezzanine.tmpfiles $(DESTDIR)$(TMPFILESDIR)/mezzanine.conf
	install -m 0644 systemd/mezzanine.service.d/storage.conf.example \
	           $(DESTDIR)$(UNITDIR)/mezzanine.service.d/
	for u in systemd/*.service; do \
		sed 's|/usr/local/share/doc/mezzanine|$(DOCDIR)|g; s|/usr/local|$(PREFIX)|g' $$u \
			> $(DESTDIR)$(UNITDIR)/$$(basename $$u); \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$u); \
	done

clean:
	rm -rf build build-* 

-include $(shell find $(BUILD) build-fuzz -name '*.d' 2>/dev/null)
