# liveagg — `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO ?= go
LIVEAGG_CACHE ?= $(HOME)/.cache/liveagg
export LIVEAGG_CACHE
TOOLS := $(LIVEAGG_CACHE)/bin
SERVICES := infra/local/services
GOTESTSUM_VERSION := v1.13.0
STATICCHECK_VERSION := v0.8.2
TFPLUGINDOCS_VERSION := v0.25.0
# Integration tests share one Kafka, one Cassandra and one moto; two packages at a time keeps
# a 2-core machine responsive without serialising everything.
INTEGRATION_FLAGS ?= -tags integration -count=1 -p 2 -timeout 75m

.PHONY: help demo build lambdas provider provider-docs test test-all lint bench bench-scale bench-worker bench-drain bench-skew bench-latency simulate-suite services-up services-down services-status tools

help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

demo: ## The whole job on an in-process Kafka: generate, aggregate, crash, restore, verify (Go only).
	$(GO) run ./examples/indoor-location/cmd/liveagg-demo $(DEMO_FLAGS)

build: ## Compile every package and the liveagg binary into bin/.
	$(GO) build ./...
	$(GO) build -o bin/liveagg ./workers/cmd/liveagg

provider: ## Build the liveagg Terraform provider into bin/terraform-provider-liveagg.
	$(GO) build -o bin/terraform-provider-liveagg ./provider

provider-docs: tools ## Regenerate provider/docs with tfplugindocs (needs the OpenTofu infra/local builds).
	$(SERVICES) up tofu
	eval "$$($(SERVICES) env)" && provider/gendocs.sh

LAMBDAS := spotinterrupt autoscaler
LAMBDA_ARCHS := arm64 amd64

lambdas: ## Build each Lambda as a provided.al2023 bootstrap and zip it into lambdas/dist/<name>-<arch>.zip.
	@mkdir -p lambdas/dist
	@for fn in $(LAMBDAS); do for arch in $(LAMBDA_ARCHS); do \
		out=lambdas/dist/build/$$fn-$$arch; mkdir -p $$out; \
		GOOS=linux GOARCH=$$arch CGO_ENABLED=0 $(GO) build -trimpath -tags lambda.norpc -ldflags "-s -w" -o $$out/bootstrap ./lambdas/$$fn/bootstrap; \
		rm -f lambdas/dist/$$fn-$$arch.zip; (cd $$out && python3 -m zipfile -c ../../$$fn-$$arch.zip bootstrap); \
		echo "lambdas/dist/$$fn-$$arch.zip"; \
	done; done

test: tools ## Unit and in-process tests: Go alone, no services, under 2 minutes.
	$(TOOLS)/gotestsum --format pkgname-and-test-fails -- -count=1 -timeout 5m ./...

test-all: tools services-up ## Every test, integration tests against the real services included.
	eval "$$($(SERVICES) env)" && \
	$(TOOLS)/gotestsum --format pkgname-and-test-fails -- $(INTEGRATION_FLAGS) ./...

lint: tools ## go vet (with and without the integration tag), gofmt and staticcheck.
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(TOOLS)/staticcheck ./...
	$(TOOLS)/staticcheck -tags integration ./...

bench: ## Engine benchmarks: ingest (vs a naive baseline), snapshot, memory, decode. ~5 minutes.
	$(GO) test -run XXX -bench 'Ingest' -benchtime 3000000x -benchmem ./workers/state/
	$(GO) test -run XXX -bench 'Snapshot|Memory|KeyTableLoad' -benchtime 5x ./workers/state/
	$(GO) test -run XXX -bench . -benchmem ./workers/record/

bench-scale: ## 10M series x 2 windows in one process: heap in use (needs ~3 GB).
	$(GO) test -run XXX -bench Scale10M -benchtime 1x ./workers/state/

bench-worker: services-up ## Worker throughput against the real Kafka vs the engine alone (CPU time), ~1 minute.
	eval "$$($(SERVICES) env)" && LIVEAGG_BENCH_RECORDS=1000000 $(GO) test -tags integration -run XXX -bench WorkerThroughput -benchtime 1x ./workers/worker/

bench-drain: services-up ## 1 GiB of state in one worker: checkpoint MB/s and pause, recovery after kill -9, drain. ~2 minutes.
	eval "$$($(SERVICES) env)" && $(GO) test -tags integration -run XXX -bench DrainAndRecovery -benchtime 1x ./workers/worker/

.PHONY: bench-incremental bench-drain-8g
bench-incremental: ## Incremental vs full checkpoints, 10M series: delta bytes and time, restore of a base + 20 deltas (needs ~5 GB). ~1 minute.
	$(GO) test -run XXX -bench Incremental10M -benchtime 1x ./workers/checkpoint/

bench-drain-8g: services-up ## A drain of 8 GB of state in one worker after a base, against moto S3 (needs ~16 GB; run alone). ~15 minutes.
	eval "$$($(SERVICES) env)" && LIVEAGG_DRAIN_SERIES=96000000 LIVEAGG_DRAIN_RECOVERY=0 GOMEMLIMIT=14GiB $(GO) test -tags integration -run XXX -bench DrainAndRecovery -benchtime 1x -timeout 60m ./workers/worker/

bench-skew: services-up ## One level vs two on Zipf-skewed orgs, 3 workers each, 5 rounds, against the real Kafka. ~2 minutes.
	eval "$$($(SERVICES) env)" && LIVEAGG_SKEW_RECORDS=2400000 $(GO) test -tags integration -run XXX -bench MultilevelSkew -benchtime 1x ./workers/worker/

bench-latency: services-up ## Window end to rollup, one level vs two, real-time events against the real Kafka. ~1 minute.
	eval "$$($(SERVICES) env)" && $(GO) test -tags integration -run XXX -bench MultilevelLatency -benchtime 1x ./workers/worker/

.PHONY: bench-repartition bench-quiet

bench-repartition: services-up ## A spec over a round-robin topic in two stages vs keyed by its key vs keyed by org: CPU per record and rate, 3 rounds. ~6 minutes.
	eval "$$($(SERVICES) env)" && LIVEAGG_SKEW_RECORDS=2400000 $(GO) test -tags integration -timeout 60m -run XXX -bench RepartitionSkew -benchtime 1x ./workers/worker/

bench-quiet: services-up ## Window end to rollup on a quiet partition (idle_timeout), one stage vs two, against the real Kafka. ~2 minutes.
	eval "$$($(SERVICES) env)" && $(GO) test -tags integration -timeout 30m -run XXX -bench QuietLatency -benchtime 1x ./workers/worker/

SIMULATE_OUT ?= simulate-suite
simulate-suite: ## Autoscaling policies on every stress trace: tables, a summary with the goals, a plot per trace in simulate-suite/ (SIMULATE_OUT=dir elsewhere). ~1 minute.
	$(GO) run ./lambdas/autoscaler/cmd/liveagg-simulate --suite --plot-dir $(SIMULATE_OUT)

services-up: ## Install (once, into $LIVEAGG_CACHE) and start Kafka, Cassandra, moto, OpenTofu, the Lambda emulator.
	$(SERVICES) up

services-down: ## Stop the services this checkout's scripts started.
	$(SERVICES) down

services-status: ## Show each service, its pid, memory and logs.
	$(SERVICES) status

tools: $(TOOLS)/gotestsum $(TOOLS)/staticcheck $(TOOLS)/tfplugindocs ## Install the Go tools the targets use.

$(TOOLS)/gotestsum:
	GOBIN=$(TOOLS) $(GO) install gotest.tools/gotestsum@$(GOTESTSUM_VERSION)

$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(TOOLS)/tfplugindocs:
	GOBIN=$(TOOLS) $(GO) install github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs@$(TFPLUGINDOCS_VERSION)
