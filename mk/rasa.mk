# Rasa targets, included from the Makefile (which defines VENV, RASA_VENV, TRATATIVA and the
# rule for $(RASA_VENV)/.installed).
#
#   make train       train models/tratativa.tar.gz (skipped when its inputs are unchanged)
#   make eval        NLU benchmark (trains, then held-out test set, out-of-scope slice, 5-fold
#                    cross-validation, TF-IDF baseline, targets) and the conversation tests
#   make eval-nlu    the NLU benchmark only; make eval-rasa-cv: Rasa's own cross-validation
#   make bench-nlu   latency/throughput of a RUNNING server (scripts/rasa-serve.sh)
#

RASA_VENV ?= .venv-rasa
VENV ?= .venv
TRATATIVA ?= $(VENV)/bin/tratativa
RESULTS ?= results
RASA_MODEL ?= models/tratativa.tar.gz
NLU_TEST ?= tests/data/nlu_test.yml
NLU_OOS ?= tests/data/nlu_test_oos.yml
RASA_URL ?= http://127.0.0.1:5005
BENCH_REQUESTS ?= 200
BENCH_CONCURRENCY ?= 10
RASA_ENV = PYTHONPATH=$(CURDIR) RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=2

.PHONY: train eval eval-nlu eval-cv eval-rasa-cv eval-core bench-nlu

train: $(RASA_VENV)/.installed
	RASA_VENV=$(RASA_VENV) scripts/rasa-train.sh

eval: eval-nlu eval-core

# Trains (always, without Rasa's cache: the training time is one of the figures), then
# scripts/nlu_benchmark.py:
# the model and a TF-IDF + logistic-regression baseline on the same held-out test set,
# out-of-scope slice and 5-fold cross-validation, and the targets of issue 17.
eval-nlu: $(VENV)/.installed
	mkdir -p $(RESULTS)
	/usr/bin/time -f "%e %M" -o $(RESULTS)/train.time \
		env FORCE=1 RASA_MAX_CACHE_SIZE=0 RASA_VENV=$(RASA_VENV) \
		scripts/rasa-train.sh > $(RESULTS)/train.log 2>&1 || { tail -20 $(RESULTS)/train.log; exit 1; }
	$(RASA_ENV) $(RASA_VENV)/bin/python scripts/nlu_benchmark.py --model $(RASA_MODEL) \
		--test $(NLU_TEST) --oos $(NLU_OOS) --train-time $(RESULTS)/train.time \
		--json $(RESULTS)/nlu_benchmark.json 2> $(RESULTS)/nlu_benchmark.log \
		| tee $(RESULTS)/nlu_benchmark.txt
	$(TRATATIVA) eval nlu $(NLU_TEST) --model $(RASA_MODEL) --json \
		--text-report $(RESULTS)/nlu_test.txt > $(RESULTS)/nlu_test.json

# The cross-validation part lives in the benchmark (same folds as the baseline); this one is
# Rasa's own, slower (it trains the whole pipeline per fold): a cross-check.
eval-cv: eval-nlu

eval-rasa-cv:
	mkdir -p $(RESULTS)/cross_validation
	$(RASA_ENV) $(RASA_VENV)/bin/rasa test nlu --nlu data/nlu --config config.yml \
		--cross-validation --folds 5 --out $(RESULTS)/cross_validation

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
