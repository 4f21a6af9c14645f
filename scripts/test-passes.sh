#!/usr/bin/env bash
# `make test`: the PostgreSQL pass in the foreground and the SQLite pass beside it, on the other
# core (each pass has its own scratch database, free ports and temporary folders; the SQLite pass
# uses Redis database 14 — pub/sub channels carry the number, see api/config.py redis_channel).
# The SQLite pass's output is printed when both are done; either failing fails the run.
set -uo pipefail
cd "$(dirname "$0")/.."
sqlite_log="$(mktemp /tmp/tratativa-test-sqlite-XXXXXX.log)"
trap 'rm -f "$sqlite_log"' EXIT
echo "== SQLite pass started beside the PostgreSQL pass (output below when it ends)"
make --no-print-directory test-sqlite REDIS_TEST_URL="${SQLITE_REDIS_TEST_URL:-redis://127.0.0.1:6379/14}" \
  > "$sqlite_log" 2>&1 &
sqlite_pid=$!
echo "== PostgreSQL pass"
make --no-print-directory test-pg
pg_status=$?
wait "$sqlite_pid"
sqlite_status=$?
echo "== SQLite pass (exit $sqlite_status)"
cat "$sqlite_log"
if [[ $pg_status -ne 0 || $sqlite_status -ne 0 ]]; then
  echo "make test: PostgreSQL pass exit $pg_status, SQLite pass exit $sqlite_status" >&2
  exit 1
fi
