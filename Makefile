# The quick start: `make demo` runs the bank example end to end; `make test` runs every test.
# Both install what they need first (scripts/setup.sh).

.PHONY: setup demo serve test bench

setup:
	@scripts/setup.sh

demo: setup
	swift run fluxgate demo

serve: setup
	swift run fluxgate serve

test: setup
	swift test

bench: setup
	swift run -c release fluxgate-bench appends
	swift run -c release fluxgate-bench feed
	swift run -c release fluxgate-bench catchup
	swift run -c release fluxgate-bench fanout
