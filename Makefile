# The two commands of the quick start: `make demo` and `make test`.

.PHONY: demo test deps lint bench fuzz install

deps:
	@scripts/install-deps.sh

demo: deps
	@scripts/demo.sh

test: deps
	cargo test --locked

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings

# The figures of record: each script writes bench/results/NAME.json, then the chart
# (bench/results/chart.svg). RUNS rounds each (default 3); BENCH picks the scripts;
# BENCH_TMP where their files go (default /tmp); RECORD=1 marks the figures as taken
# on a quiet machine. A failing script does not stop the others.
BENCH ?= create small growth daemon split scale differential serve publish
bench: deps
	@failed=""; for script in $(BENCH); do bench/$$script.sh || failed="$$failed $$script"; done; \
	python3 bench/report.py chart bench/results; \
	if [ -n "$$failed" ]; then echo "bench: failed:$$failed" >&2; exit 1; fi

# Not part of `make test`: each target runs for FUZZ_SECONDS (default 1200).
fuzz:
	@scripts/fuzz.sh

# The binary, its man pages and its completions for bash, zsh and fish, under PREFIX
# (default /usr/local; DESTDIR for staging).
PREFIX ?= /usr/local
install:
	cargo build --release --locked
	install -Dm755 target/release/pkgr "$(DESTDIR)$(PREFIX)/bin/pkgr"
	target/release/pkgr man-pages "$(DESTDIR)$(PREFIX)/share/man/man1" >/dev/null
	mkdir -p "$(DESTDIR)$(PREFIX)/share/bash-completion/completions" \
		"$(DESTDIR)$(PREFIX)/share/zsh/site-functions" \
		"$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d"
	target/release/pkgr completions bash >"$(DESTDIR)$(PREFIX)/share/bash-completion/completions/pkgr"
	target/release/pkgr completions zsh >"$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_pkgr"
	target/release/pkgr completions fish >"$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/pkgr.fish"
