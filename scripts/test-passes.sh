#!/usr/bin/env bash
# `make test` on two cores, as two streams of about the same length:
# - in the foreground, the PostgreSQL pass without the e2e and browser groups;
# - beside it, the SQLite pass, then the e2e (real Rasa) and browser (Chromium) groups on
#   PostgreSQL.
# Each pytest run has its own scratch database, free ports and temporary folders; each stream its
# own Redis database (15, and 14 for the second: pub/sub channels carry the number, see
# api/config.py redis_channel). The second stream's output is printed when both are done; any
# part failing fails the run. (One PostgreSQL pass beside the SQLite pass left a core idle for
# the pass's last ten minutes: 20 minutes against 9.5.)
set -uo pipefail
cd "$(dirname "$0")/.."
second_log="$(mktemp /tmp/tratativa-test-second-XXXXXX.log)"
trap 'rm -f "$second_log"' EXIT
second_redis="${SQLITE_REDIS_TEST_URL:-redis://127.0.0.1:6379/14}"

second_stream() {
  local sqlite_status e2e_status
  echo "== SQLite pass"
  make --no-print-directory test-sqlite REDIS_TEST_URL="$second_redis"
  sqlite_status=$?
  echo "== SQLite pass (exit $sqlite_status)"
  echo "== PostgreSQL pass, e2e and browser groups"
  make --no-print-directory test-pg PG_MARKERS="e2e or browser" REDIS_TEST_URL="$second_redis"
  e2e_status=$?
  echo "== PostgreSQL pass, e2e and browser groups (exit $e2e_status)"
  [[ $sqlite_status -eq 0 && $e2e_status -eq 0 ]]
}

echo "== beside this: the SQLite pass, then the e2e and browser groups on PostgreSQL (output below when done)"
second_stream > "$second_log" 2>&1 &
second_pid=$!
echo "== PostgreSQL pass, all but the e2e and browser groups"
make --no-print-directory test-pg PG_MARKERS="not e2e and not browser"
pg_status=$?
wait "$second_pid"
second_status=$?
cat "$second_log"
if [[ $pg_status -ne 0 || $second_status -ne 0 ]]; then
  echo "make test: PostgreSQL pass (without e2e, browser) exit $pg_status; SQLite pass + e2e, browser exit $second_status" >&2
  exit 1
fi
