# Build and install postie with its man pages and shell completions.
#
#   make                          # cargo build --release
#   sudo make install             # into /usr/local
#   make install PREFIX=/usr DESTDIR=/tmp/pkg   # for a package
#   sudo make install-sendmail-link             # optional: postie as sendmail
#   sudo make uninstall
#   make deb                      # Debian packages postie and postie-mta, in target/deb/
#
# The man pages and completions are the committed files in man/ and
# completions/; `cargo run -- generate .` regenerates them.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
DOCDIR ?= $(DATADIR)/doc/postie
BASHDIR ?= $(DATADIR)/bash-completion/completions
ZSHDIR ?= $(DATADIR)/zsh/site-functions
FISHDIR ?= $(DATADIR)/fish/vendor_completions.d
# The spool: root's queue and the maildrop where other users' sendmail
# leaves mail for root's `postie queue flush` (postie looks for it here
# whatever root's queue_dir says; POSTIE_SPOOL_DIR is for tests only).
SPOOLDIR ?= /var/spool/postie
# Where the sendmail links go (these two paths are what programs call).
SENDMAIL_LINKS ?= /usr/sbin/sendmail /usr/lib/sendmail

CARGO ?= cargo
INSTALL ?= install
BINARY = target/release/postie

.PHONY: all build install install-files install-spool install-sendmail-link uninstall deb

all: build

build:
	$(CARGO) build --release

# Built when missing, so that `sudo make install` after `make` does not run
# cargo as root.
$(BINARY):
	$(CARGO) build --release

install: install-files install-spool

# Everything but the spool: what the postie Debian package ships (the spool
# is made by postie-mta's `postie queue init`, so that removing the package
# leaves a spool that still holds mail).
install-files: $(BINARY)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(BASHDIR) $(DESTDIR)$(ZSHDIR) $(DESTDIR)$(FISHDIR) $(DESTDIR)$(DOCDIR)/examples
	$(INSTALL) -m 755 $(BINARY) $(DESTDIR)$(BINDIR)/postie
	$(INSTALL) -m 644 man/postie.1 man/postie-queue.1 man/postie-oauth2.1 man/postie-dkim.1 $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 644 man/postie.toml.5 $(DESTDIR)$(MANDIR)/man5/
	$(INSTALL) -m 644 completions/postie.bash $(DESTDIR)$(BASHDIR)/postie
	$(INSTALL) -m 644 completions/_postie $(DESTDIR)$(ZSHDIR)/_postie
	$(INSTALL) -m 644 completions/postie.fish $(DESTDIR)$(FISHDIR)/postie.fish
	$(INSTALL) -m 644 examples/config.toml $(DESTDIR)$(DOCDIR)/examples/config.toml
	$(INSTALL) -m 644 README.md $(DESTDIR)$(DOCDIR)/README.md
	$(INSTALL) -m 644 doc/capabilities.schema.json $(DESTDIR)$(DOCDIR)/capabilities.schema.json
	$(INSTALL) -m 644 doc/result.schema.json $(DESTDIR)$(DOCDIR)/result.schema.json

install-spool:
	# 0711: users reach the maildrop but cannot list root's queue; 1733:
	# anyone may drop a file, nobody else may list or remove it. The same
	# as `postie queue init`, which also repairs them.
	$(INSTALL) -d -m 0711 $(DESTDIR)$(SPOOLDIR)
	$(INSTALL) -d -m 1733 $(DESTDIR)$(SPOOLDIR)/maildrop $(DESTDIR)$(SPOOLDIR)/incoming

# Links /usr/sbin/sendmail and /usr/lib/sendmail to the installed postie.
# An existing sendmail that is not already this link is left alone: remove
# the other MTA first.
install-sendmail-link:
	@for link in $(SENDMAIL_LINKS); do \
		target=$$(readlink "$(DESTDIR)$$link" 2>/dev/null); \
		if [ "$$target" = "$(BINDIR)/postie" ]; then \
			echo "$(DESTDIR)$$link already points to $(BINDIR)/postie"; \
		elif [ -e "$(DESTDIR)$$link" ] || [ -L "$(DESTDIR)$$link" ]; then \
			echo "$(DESTDIR)$$link exists (another MTA?); remove it first" >&2; exit 1; \
		else \
			$(INSTALL) -d "$$(dirname "$(DESTDIR)$$link")" && \
			ln -s "$(BINDIR)/postie" "$(DESTDIR)$$link" && \
			echo "$(DESTDIR)$$link -> $(BINDIR)/postie"; \
		fi; \
	done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/postie
	rm -f $(DESTDIR)$(MANDIR)/man1/postie.1 $(DESTDIR)$(MANDIR)/man1/postie-queue.1 $(DESTDIR)$(MANDIR)/man1/postie-oauth2.1 $(DESTDIR)$(MANDIR)/man1/postie-dkim.1
	rm -f $(DESTDIR)$(MANDIR)/man5/postie.toml.5
	rm -f $(DESTDIR)$(BASHDIR)/postie $(DESTDIR)$(ZSHDIR)/_postie $(DESTDIR)$(FISHDIR)/postie.fish
	rm -f $(DESTDIR)$(DOCDIR)/examples/config.toml $(DESTDIR)$(DOCDIR)/README.md \
		$(DESTDIR)$(DOCDIR)/capabilities.schema.json $(DESTDIR)$(DOCDIR)/result.schema.json
	rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) 2>/dev/null || true
	# The spool may still hold mail: removed only when empty.
	rmdir $(DESTDIR)$(SPOOLDIR)/maildrop $(DESTDIR)$(SPOOLDIR)/incoming 2>/dev/null || true
	@for link in $(SENDMAIL_LINKS); do \
		if [ "$$(readlink "$(DESTDIR)$$link" 2>/dev/null)" = "$(BINDIR)/postie" ]; then \
			rm -f "$(DESTDIR)$$link" && echo "removed $(DESTDIR)$$link"; \
		fi; \
	done

# Both Debian packages, into target/deb/: debian/rules runs the release
# build and `make install-files`. Needs debhelper (apt-get install
# debhelper); runs as root or, for anyone else, under fakeroot.
deb:
	@command -v dh >/dev/null || { echo "make deb needs debhelper: apt-get install debhelper" >&2; exit 1; }
	if [ "$$(id -u)" = 0 ]; then debian/rules binary; else fakeroot debian/rules binary; fi
	@ls target/deb/*.deb
