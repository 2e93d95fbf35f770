# Appended by config.m4 to the phpize Makefile, in place of the libtool rules:
# cargo builds the module, and modules/rr.la lets `make test` and
# `make install` treat it like any other shared extension.

RR_CARGO_TARGET_DIR ?= $(RR_CARGO_TARGET_DIR_DEFAULT)
# Extra cargo flags, e.g. RR_CARGO_FLAGS=--locked or --offline.
RR_CARGO_FLAGS ?=

# Listing the inputs keeps `make install` (often under sudo) from running cargo
# again right after `make`; cargo decides what actually needs recompiling.
RR_CARGO_INPUTS = $(srcdir)/Cargo.toml \
	$(wildcard $(srcdir)/Cargo.lock $(srcdir)/build.rs $(srcdir)/.cargo/config.toml) \
	$(shell find $(srcdir)/src -type f 2>/dev/null)

# One rule writes both files, so make -j has nothing to race. The old rr.so is
# unlinked rather than overwritten in case a running php has it mapped.
$(phplibdir)/rr.la: $(RR_CARGO_INPUTS)
	$(RR_CARGO_ENV) $(CARGO) build --release $(RR_CARGO_FLAGS) --manifest-path=$(srcdir)/Cargo.toml --target-dir=$(RR_CARGO_TARGET_DIR)
	@test -d $(phplibdir) || $(mkinstalldirs) $(phplibdir)
	rm -f $(phplibdir)/rr.so $@
	cp $(RR_CARGO_TARGET_DIR)/release/librr.so $(phplibdir)/rr.so
	printf "# rr.la - written by rr's Makefile.frag (the module is built by cargo)\ndlname='rr.so'\nlibrary_names='rr.so'\nold_library=''\ninstalled=no\nshouldnotlink=yes\nlibdir='$(phplibdir)'\n" > $@
