# Build feedwire and install it as a systemd service.
#
#   make build               the release binary, from Cargo.lock as committed
#   sudo make install        binary, systemd unit, and /etc/feedwire with an example config
#   sudo make uninstall      removes the binary and the unit; keeps /etc/feedwire and the state
#
# PREFIX (default /usr/local) places the binary; DESTDIR stages everything under another root,
# for packaging. The config directory and the unit's paths are /etc/feedwire and
# /var/lib/feedwire whatever PREFIX is.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
# Units installed by hand go to /etc/systemd/system; a package would use
# UNITDIR=/usr/lib/systemd/system.
UNITDIR ?= /etc/systemd/system
CONFDIR ?= /etc/feedwire
CARGO ?= cargo
CARGO_TARGET_DIR ?= target
BIN ?= $(CARGO_TARGET_DIR)/release/feedwire

.PHONY: all build install uninstall

all: build

build:
	$(CARGO) build --release --locked

# Does not build: run `make build` as yourself first, so `sudo` never runs cargo.
install:
	@test -x "$(BIN)" || { echo "make: $(BIN) is missing; run 'make build' first" >&2; exit 1; }
	install -Dm755 "$(BIN)" "$(DESTDIR)$(BINDIR)/feedwire"
	install -d "$(DESTDIR)$(UNITDIR)"
	sed 's|^ExecStart=/usr/local/bin/feedwire |ExecStart=$(BINDIR)/feedwire |' \
		systemd/feedwire.service > "$(DESTDIR)$(UNITDIR)/feedwire.service"
	chmod 644 "$(DESTDIR)$(UNITDIR)/feedwire.service"
	install -d -m755 "$(DESTDIR)$(CONFDIR)"
	@# The example config, only where there is none yet; readable by the service's dynamic user.
	@if [ -e "$(DESTDIR)$(CONFDIR)/feedwire.toml" ]; then \
		echo "keeping $(DESTDIR)$(CONFDIR)/feedwire.toml"; \
	else \
		sed -e 's|^state_dir = .*|state_dir = "/var/lib/feedwire"|' \
		    -e 's|^\(# Where the SQLite database (feedwire.db) lives\)\..*|\1: the StateDirectory of the systemd unit.|' \
		    -e '/^# working directory: here, the repository root/d' \
			config/feedwire.toml > "$(DESTDIR)$(CONFDIR)/feedwire.toml" && \
		chmod 644 "$(DESTDIR)$(CONFDIR)/feedwire.toml" && \
		echo "installed $(DESTDIR)$(CONFDIR)/feedwire.toml"; \
	fi
	@# Secrets for webhooks (secret_env), read by systemd as root: private to root.
	@if [ ! -e "$(DESTDIR)$(CONFDIR)/feedwire.env" ]; then \
		printf '%s\n' \
			'# Environment of the feedwire service, read by systemd (EnvironmentFile=).' \
			'# One NAME=value per line; name the variable in a webhook sink: secret_env = "HOOK_SECRET".' \
			'# HOOK_SECRET=whsec_...' > "$(DESTDIR)$(CONFDIR)/feedwire.env" && \
		chmod 600 "$(DESTDIR)$(CONFDIR)/feedwire.env" && \
		echo "installed $(DESTDIR)$(CONFDIR)/feedwire.env"; \
	fi
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then \
		systemctl daemon-reload; \
	fi
	@echo "next: edit $(CONFDIR)/feedwire.toml, then: systemctl enable --now feedwire"

# Keeps the config and secrets in $(CONFDIR) and the database in /var/lib/feedwire.
uninstall:
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then \
		systemctl disable --now feedwire.service 2>/dev/null || true; \
	fi
	rm -f "$(DESTDIR)$(BINDIR)/feedwire" "$(DESTDIR)$(UNITDIR)/feedwire.service"
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then \
		systemctl daemon-reload; \
	fi
	@echo "kept $(CONFDIR) and /var/lib/feedwire; remove them by hand if they are no longer wanted"
