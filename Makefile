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
CONTROLLER_GEN := $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
FRAMEWORKS_APIS := github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/...

.PHONY: all build test vet fmt-check unit policy-test lint bench fuzz demo up down clean controlplane gatekeeper generate verify-generated docker-build kind-up deploy fixtures-kubebench

all: build

## build: compile guardctl, webhook, scanner and the demo driver into bin/
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/... ./hack/demo

## test: formatting, vet, generated files, unit and e2e tests (fuzz seeds
## included; e2e on a local control plane built on first use), policy suites
test: fmt-check vet verify-generated controlplane unit policy-test

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	DAAAS_GUARD_E2E=1 $(GO) test -count=1 ./...
	@if [ -f out/compliance/report.png ]; then echo "compliance report in Chromium: out/compliance/report.html, screenshot out/compliance/report.png"; fi

## controlplane: build kube-apiserver and etcd from source into hack/controlplane/bin (once)
controlplane:
	./hack/controlplane/build.sh

## gatekeeper: build OPA Gatekeeper's manager from source into hack/gatekeeper/bin (once),
## for the load test's same-run comparison (make bench only)
gatekeeper:
	./hack/gatekeeper/build.sh

## generate: deep-copy code and CRDs from the API types (ours and the constraint
## framework's); the wg-policy PolicyReport CRD for the e2e tests
generate:
	$(CONTROLLER_GEN) object paths=./api/... paths=./pkg/policyreport/...
	$(CONTROLLER_GEN) crd:crdVersions=v1 paths=./api/... paths=$(FRAMEWORKS_APIS) output:crd:dir=manifests/base/crds
	$(CONTROLLER_GEN) crd:crdVersions=v1 paths=./pkg/policyreport/... output:crd:dir=test/e2e/testdata/crds

# verify-generated regenerates and fails if anything changed, so stale
# generated files never pass CI.
GENERATED_SUM = find api pkg/policyreport manifests/base/crds test/e2e/testdata/crds -type f | sort | xargs sha256sum
verify-generated:
	@before=$$($(GENERATED_SUM)); $(MAKE) --no-print-directory generate >/dev/null; after=$$($(GENERATED_SUM)); \
	if [ "$$before" != "$$after" ]; then echo "generated files were stale and have been regenerated: review and commit them"; exit 1; fi

## policy-test: run every policy test suite with guardctl
policy-test: build
	$(BIN)/guardctl test policies/

## lint: gofmt, go vet and staticcheck
lint: fmt-check vet
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

## bench: engine benchmarks (ratios to a baseline in the same run), then the
## webhook under load on the local control plane (long; not part of test)
bench: build controlplane gatekeeper
	$(GO) test -run '^$$' -bench . -skip '^BenchmarkScale$$' -benchmem -count=5 ./pkg/... | $(GO) run ./hack/benchratio
	# The scanner at scale: 10,000 pods over 1,000 images, once (minutes).
	$(GO) test -run '^$$' -bench '^BenchmarkScale$$' -benchtime 1x -timeout 30m -v ./pkg/scan
	$(BIN)/guardctl bench -p policies/profiles/daaas --data policies/profiles/daaas/workloads/inventory.yaml pkg/policy/testdata/bench/pipeline_pod.yaml
	$(GO) run ./hack/loadtest -gatekeeper hack/gatekeeper/bin

## fuzz: run each fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./pkg/manifest -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/suite -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/target -run '^$$' -fuzz '^FuzzParseJSON$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/target -run '^$$' -fuzz '^FuzzParseJSONDeferring$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/policy -run '^$$' -fuzz '^FuzzReviewCache$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/admission -run '^$$' -fuzz '^FuzzValidator$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/admission -run '^$$' -fuzz '^FuzzServer$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/inventory -run '^$$' -fuzz '^FuzzDecodeEvent$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/inventory -run '^$$' -fuzz '^FuzzFrameReader$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/mutate -run '^$$' -fuzz '^FuzzHandler$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/imagegate -run '^$$' -fuzz '^FuzzReviewRequest$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/kubebench -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/kubebench -run '^$$' -fuzz '^FuzzParseStarboard$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/kubehunter -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/kubehunter -run '^$$' -fuzz '^FuzzParseStarboard$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/evidence -run '^$$' -fuzz '^FuzzAddFile$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/evidence -run '^$$' -fuzz '^FuzzDecodeImageScan$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/compliance/render -run '^$$' -fuzz '^FuzzWriteOSCAL$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/compliance -run '^$$' -fuzz '^FuzzParseModel$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/scan/report -run '^$$' -fuzz '^FuzzParseTrivyJSON$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./pkg/scan/registry -run '^$$' -fuzz '^FuzzParseDockerConfig$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s

## fixtures-kubebench: regenerate pkg/kubebench/testdata from a real
## kube-bench run on a local control plane (root, openssl, curl, jq; ~10 min cold)
fixtures-kubebench: controlplane
	./hack/kubebench/fixtures.sh

## demo: the suite on a local control plane, step by step (see README.md)
demo: build controlplane
	$(BIN)/demo -bin $(BIN)

## up: keep that environment running in the background and print a kubeconfig
up: build controlplane
	$(BIN)/demo -bin $(BIN) up

## down: stop what `make up` started
down:
	$(BIN)/demo -bin $(BIN) down

## Cluster targets: they need Docker and kind, which CI does not have.
IMAGE_PREFIX ?= k8scc01covidacr.azurecr.io/daaas-guard
IMAGE_TAG    ?= dev
KIND_CLUSTER ?= daaas-guard

docker-build:
	docker build --build-arg BINARY=webhook -t $(IMAGE_PREFIX)/webhook:$(IMAGE_TAG) .
	docker build --build-arg BINARY=scanner -t $(IMAGE_PREFIX)/scanner:$(IMAGE_TAG) .

kind-up:
	kind create cluster --name $(KIND_CLUSTER) --config kind-config.yaml

# deploy installs the suite, then the profile in the order the API server
# needs: constraint kinds are served only once the webhook has created their
# CRDs from the templates, so the webhook must be up, and every template
# created (status.created), before the constraints are applied.
deploy: docker-build build
	kind load docker-image --name $(KIND_CLUSTER) $(IMAGE_PREFIX)/webhook:$(IMAGE_TAG) $(IMAGE_PREFIX)/scanner:$(IMAGE_TAG)
	$(BIN)/guardctl eval -p policies/profiles/daaas manifests/overlays/kind
	kubectl apply --server-side -k manifests/overlays/kind
	kubectl -n daaas-guard rollout status deployment/daaas-guard-webhook --timeout=5m
	kubectl apply --server-side -k hack/deploy/daaas-templates
	kubectl wait --for=jsonpath='{.status.created}'=true constrainttemplates --all --timeout=5m
	kubectl apply --server-side -k policies/profiles/daaas

clean:
	rm -rf $(BIN) out
