#!/usr/bin/env bash
# `make bench`: start the whole stack on its own ports and a fresh database, then print the
# figures: WhatsApp under open-loop load at fixed arrival rates beside Rasa alone (same rates, same
# run), Rasa parse latency, and e-mail ingestion from Dovecot beside a bare IMAP fetch. Loopback
# only, bounded. The last line is one machine-readable summary:
#   bench: whatsapp_rate=<msg/s> rasa_rate=<msg/s> rate_ratio=<x.xx> added_p50_ms=<n> ack_p99_ms=<n> mail_per_s=<n>
# Knobs: BENCH_RATES (default 5,10,15,20,25,30,35,40,50,60,80,100), BENCH_INFRINGERS (50),
# BENCH_MESSAGES (per rate, 100),
# BENCH_EMAIL=0 to skip the e-mail part; BENCH_SCALE=0 to skip the scale part (scripts/bench_scale.sh,
# BENCH_SCALE_CASES, default 20000). Before and after, the machine's speed
# (scripts/bench_machine.py: one core alone, every core at once).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH_DIR="$(mktemp -d /tmp/tratativa-bench-XXXXXX)"
trap 'rm -rf "$BENCH_DIR"' EXIT

if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  db="tratativa_bench_$$"
  psql -h 127.0.0.1 -U postgres -d test -qc "CREATE DATABASE $db" >/dev/null
  trap 'psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; rm -rf "$BENCH_DIR"' EXIT
  export DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:5432/$db"
  echo "bench: PostgreSQL database $db"
else
  export DATABASE_URL="sqlite+aiosqlite:///$BENCH_DIR/bench.db"
  echo "bench: SQLite at $DATABASE_URL"
fi
export STORAGE_DIR="$BENCH_DIR/storage" RUN_DIR="$BENCH_DIR/run"
export PORT="${BENCH_PORT:-8100}" RASA_PORT="${BENCH_RASA_PORT:-5105}"
export TWILIO_SIMULATOR_PORT="${BENCH_SIM_PORT:-8199}"
export PUBLIC_BASE_URL="http://127.0.0.1:$PORT"
unset TWILIO_ACCOUNT_SID RASA_URL ACTION_ENDPOINT_URL
export RASA_GATEWAY_SECRET="bench-$$-secret"

export BENCH_OUT="$BENCH_DIR/out"
# This machine's speed before and after: on a shared VM it drifts between minutes, and the
# figures below only compare with runs made at a similar speed.
echo; echo "== Machine"
.venv/bin/python scripts/bench_machine.py | tee "$BENCH_OUT.machine"
export BENCH_RATES="${BENCH_RATES:-5,10,15,20,25,30,35,40,50,60,80,100}" BENCH_INFRINGERS="${BENCH_INFRINGERS:-50}"
export BENCH_MESSAGES="${BENCH_MESSAGES:-100}"
scripts/run.sh -- bash -c '
  set -eo pipefail
  echo; echo "== WhatsApp (signed webhook -> service -> Rasa -> outbox -> Twilio-compatible server)"
  echo "   beside Rasa alone through its gateway, open loop at fixed arrival rates"
  .venv/bin/python scripts/bench_whatsapp.py --service-url "$PUBLIC_BASE_URL" \
    --sim-url "http://127.0.0.1:$TWILIO_SIMULATOR_PORT" --rasa-url "$RASA_URL" \
    --rates "$BENCH_RATES" --infringers "$BENCH_INFRINGERS" --messages "$BENCH_MESSAGES" \
    --database-url "$DATABASE_URL" --max-seconds 480 | tee "$BENCH_OUT.whatsapp"
  echo; echo "== Rasa gateway parse latency"
  .venv/bin/python scripts/bench_nlu.py --url "$RASA_URL" --requests 200 --concurrency 10
  echo; echo "== Memory: peak RSS under the load above"
  .venv/bin/python scripts/peak_rss.py "$RUN_DIR" service worker rasa | tee "$BENCH_OUT.memory"
'
if [[ -f scripts/bench_email.py && "${BENCH_EMAIL:-1}" != 0 ]]; then
  echo; echo "== E-mail: 1,000 mails ingested from Dovecot, beside a bare IMAP fetch"
  # Same database server as the rest (it makes and drops its own scratch database).
  if [[ "$DATABASE_URL" == postgresql* ]]; then
    export BENCH_DATABASE_URL="${BENCH_DATABASE_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/test}"
  fi
  .venv/bin/python scripts/bench_email.py | tee "$BENCH_OUT.email"
fi

if [[ "${BENCH_SCALE:-1}" != 0 ]]; then
  echo; echo "== Scale: ${BENCH_SCALE_CASES:-20000} cases on PostgreSQL: panel, metrics, rules, alerts"
  scripts/bench_scale.sh | tee "$BENCH_OUT.scale" || true
fi

echo; echo "== Machine, again"
.venv/bin/python scripts/bench_machine.py | tee -a "$BENCH_OUT.machine"

field() { # field FILE KEY: the value of KEY=... on the file's summary line, 0 when absent
  sed -n "s/.*[ :]$2=\([^ ]*\).*/\1/p" "$1" 2>/dev/null | tail -1 | grep . || echo 0
}
w="$BENCH_OUT.whatsapp" e="$BENCH_OUT.email"
echo
echo "bench: whatsapp_rate=$(field "$w" whatsapp_rate) rasa_rate=$(field "$w" rasa_rate)" \
  "rate_ratio=$(field "$w" rate_ratio) added_p50_ms=$(field "$w" added_p50_ms)" \
  "ack_p99_ms=$(field "$w" ack_p99_ms) mail_per_s=$(field "$e" mail_per_s)"
