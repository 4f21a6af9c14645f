# Rasa targets, included from the Makefile (which defines VENV, RASA_VENV, TRATATIVA and the
# rule for $(RASA_VENV)/.installed).
#
#   make train       train models/tratativa.tar.gz (skipped when its inputs are unchanged)
#   make eval        held-out NLU report, 3-fold cross-validation, conversation tests
#   make bench-nlu   latency/throughput of a RUNNING server (scripts/rasa-serve.sh)
#

RASA_VENV ?= .venv-rasa
VENV ?= .venv
TRATATIVA ?= $(VENV)/bin/tratativa
RESULTS ?= results
RASA_MODEL ?= models/tratativa.tar.gz
NLU_HOLDOUT ?= tests/data/nlu_holdout.yml
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
# Conversation tests: tests/stories/*.yml (Rasa test-story format) played by
# tests/e2e/test_conversations.py against a real Rasa server whose actions run in a real
# service on a real case (Rasa's own `rasa test core` would run them with no case behind the
# sender). The report lands in $(RESULTS)/conversation_tests.jsonl.
eval-core: train $(VENV)/.installed
	mkdir -p $(RESULTS)
	rm -f $(RESULTS)/conversation_tests.jsonl
	TRATATIVA_RESULTS_DIR=$(RESULTS) $(VENV)/bin/python -m pytest -q -p no:cacheprovider \
		tests/e2e/test_conversations.py

bench-nlu: $(VENV)/.installed
	$(VENV)/bin/python scripts/bench_nlu.py --url $(RASA_URL) \
		--requests $(BENCH_REQUESTS) --concurrency $(BENCH_CONCURRENCY)
