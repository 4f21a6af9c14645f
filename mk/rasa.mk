# Rasa targets, included from the Makefile (which defines VENV, RASA_VENV, TRATATIVA and the
# rule for $(RASA_VENV)/.installed).
#
#   make train       train models/tratativa.tar.gz (skipped when its inputs are unchanged)
#   make eval        held-out NLU report, 3-fold cross-validation, conversation tests
#   make bench-nlu   latency/throughput of a RUNNING server (scripts/rasa-serve.sh)
#
# Conversation tests (`rasa test core --stories tests/stories/`) run custom actions, so the
# action server (the Tratativa service) must answer at ACTION_ENDPOINT_URL. HOOK: set
# ACTION_SERVER_CMD to a command that starts it in the foreground; `make eval` starts it in
# the background, waits for ACTION_SERVER_PORT to accept connections, runs the tests and stops
# it. Left empty, an already running service is assumed.

RASA_VENV ?= .venv-rasa
VENV ?= .venv
TRATATIVA ?= $(VENV)/bin/tratativa
RESULTS ?= results
RASA_MODEL ?= models/tratativa.tar.gz
NLU_HOLDOUT ?= tests/data/nlu_holdout.yml
CORE_STORIES ?= tests/stories
ACTION_SERVER_CMD ?=
ACTION_SERVER_PORT ?= 8000
ACTION_ENDPOINT_URL ?= http://127.0.0.1:$(ACTION_SERVER_PORT)/actions/webhook
RASA_URL ?= http://127.0.0.1:5005
BENCH_REQUESTS ?= 200
BENCH_CONCURRENCY ?= 10
RASA_ENV = PYTHONPATH=$(CURDIR) RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=2

.PHONY: train eval eval-nlu eval-cv eval-core bench-nlu

train: $(RASA_VENV)/.installed
	RASA_VENV=$(RASA_VENV) scripts/rasa-train.sh

eval: eval-nlu eval-cv eval-core

eval-nlu: train $(VENV)/.installed
	mkdir -p $(RESULTS)
	$(TRATATIVA) eval nlu $(NLU_HOLDOUT) --model $(RASA_MODEL) --json \
		--text-report $(RESULTS)/nlu_holdout.txt > $(RESULTS)/nlu_holdout.json
	@cat $(RESULTS)/nlu_holdout.txt

eval-cv: $(RASA_VENV)/.installed
	mkdir -p $(RESULTS)/cross_validation
	$(RASA_ENV) $(RASA_VENV)/bin/rasa test nlu --nlu data/nlu --config config.yml \
		--cross-validation --folds 3 --out $(RESULTS)/cross_validation

eval-core: export ACTION_SERVER_CMD := $(ACTION_SERVER_CMD)
eval-core: train
	@if [ ! -d $(CORE_STORIES) ]; then echo "eval-core: no $(CORE_STORIES)/, skipped"; exit 0; fi; \
	set -e; \
	if [ -n "$$ACTION_SERVER_CMD" ]; then \
		setsid bash -c "$$ACTION_SERVER_CMD" & pid=$$!; \
		trap 'kill -- -$$pid 2>/dev/null || true' EXIT; \
		for i in $$(seq 1 240); do \
			(exec 3<>/dev/tcp/127.0.0.1/$(ACTION_SERVER_PORT)) 2>/dev/null && break; \
			kill -0 $$pid 2>/dev/null || { echo "eval-core: action server exited"; exit 1; }; \
			[ $$i -lt 240 ] || { echo "eval-core: action server not listening on $(ACTION_SERVER_PORT)"; exit 1; }; \
			sleep 0.5; \
		done; \
	fi; \
	mkdir -p $(RESULTS)/core; \
	$(RASA_ENV) ACTION_ENDPOINT_URL=$(ACTION_ENDPOINT_URL) \
		ACTION_ENDPOINT_TOKEN="$${ACTION_ENDPOINT_TOKEN:-}" \
		$(RASA_VENV)/bin/rasa test core --stories $(CORE_STORIES) --model $(RASA_MODEL) \
		--endpoints endpoints.yml --out $(RESULTS)/core --fail-on-prediction-errors

bench-nlu: $(VENV)/.installed
	$(VENV)/bin/python scripts/bench_nlu.py --url $(RASA_URL) \
		--requests $(BENCH_REQUESTS) --concurrency $(BENCH_CONCURRENCY)
