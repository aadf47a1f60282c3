# The two commands of the quick start: `make demo` and `make test`.

.PHONY: demo test deps lint bench fuzz

deps:
	@scripts/install-deps.sh

demo: deps
	@scripts/demo.sh

test: deps
	cargo test --locked

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings

bench: deps
	@bench/create.sh
	@bench/small.sh
	@bench/differential.sh

# Not part of `make test`: each target runs for FUZZ_SECONDS (default 1200).
fuzz:
	@scripts/fuzz.sh
