# daaas-guard build, test and demo entry points. See README.md.

# Trivy v0.74 imports encoding/json/v2, which Go 1.26 only builds with this
# experiment; every go command in this repository runs with it so that all
# packages see the same encoding/json.
export GOEXPERIMENT := jsonv2

SHELL   := /bin/bash
.SHELLFLAGS := -o pipefail -c
GO      ?= go
BIN     := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
STATICCHECK_VERSION := v0.8.2

.PHONY: all build test vet fmt-check unit policy-test lint bench fuzz demo clean

all: build

## build: compile guardctl, webhook and scanner into bin/
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

## test: formatting, vet, unit tests (fuzz seed corpora included), policy suites
test: fmt-check vet unit policy-test

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -count=1 ./...

## policy-test: run every policy test suite with guardctl
policy-test: build
	$(BIN)/guardctl test policies/

## lint: gofmt, go vet and staticcheck
lint: fmt-check vet
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

## bench: benchmarks, reported with allocations (long; not part of test)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=5 ./pkg/... | $(GO) run ./hack/benchratio

## fuzz: run each fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./pkg/manifest -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/suite -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s

## demo: show the suite at work (see README.md)
demo: build
	./hack/demo.sh

clean:
	rm -rf $(BIN) out
