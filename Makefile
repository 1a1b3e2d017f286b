# The quick start: `make demo` runs the bank example end to end; `make test` runs every test.
# Both install what they need first (scripts/setup.sh).

.PHONY: setup setup-build clients demo serve test bench cluster fuzz install

setup:
	@scripts/setup.sh test

setup-build:
	@scripts/setup.sh build

# The Python clients' packages (clients/python/requirements.txt) in the virtual environment .venv.
clients:
	@scripts/setup.sh clients

demo: setup-build
	swift run fluxgate demo

serve: setup-build
	swift run fluxgate serve

test: setup
	scripts/test.sh

# One file to copy: a release build of fluxgate (the web UI is compiled in) into $(DESTDIR)$(PREFIX)/bin, stripped
# (24 MB instead of 101 MB); `make install STRIP=` keeps the symbols, for crash backtraces with function names.
PREFIX ?= /usr/local
STRIP ?= -s
install: setup-build
	swift build -c release --product fluxgate
	install -d "$(DESTDIR)$(PREFIX)/bin"
	install $(STRIP) -m 755 "$$(swift build -c release --show-bin-path)/fluxgate" "$(DESTDIR)$(PREFIX)/bin/fluxgate"

bench: setup
	swift run -c release fluxgate-bench appends
	swift run -c release fluxgate-bench feed
	swift run -c release fluxgate-bench catchup
	swift run -c release fluxgate-bench legacy
	swift run -c release fluxgate-bench fanout
	swift build -c release --product fluxgate && swift run -c release fluxgate-bench websocket
	swift build -c release --product fluxgate && swift run -c release fluxgate-bench memory
	scripts/postgres.sh start >/dev/null && swift run -c release fluxgate-bench postgres

# Two gateway nodes on one PostgreSQL behind nginx, checked end to end (deploy/README.md).
cluster: setup
	swift build --product fluxgate
	FLUXGATE_BIN="$$(swift build --show-bin-path)/fluxgate" deploy/local-cluster.sh run

# The fuzz targets (WebSocket core, the gateway's HTTP request path), 60 s each (Tests/Fuzz/README.md).
fuzz: setup
	Tests/Fuzz/run.sh 60
