#!/usr/bin/env bash
# `make bench`: start the whole stack on its own ports and a fresh database, then print the
# figures: WhatsApp webhook→reply latency and throughput beside Rasa alone, Rasa parse latency,
# and e-mail ingestion from Dovecot beside a bare IMAP fetch. Loopback only, bounded.
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
export STORAGE_DIR="$BENCH_DIR/storage"
export PORT="${BENCH_PORT:-8100}" RASA_PORT="${BENCH_RASA_PORT:-5105}"
export TWILIO_SIMULATOR_PORT="${BENCH_SIM_PORT:-8199}"
export PUBLIC_BASE_URL="http://127.0.0.1:$PORT"
unset TWILIO_ACCOUNT_SID RASA_URL ACTION_ENDPOINT_URL
export RASA_GATEWAY_SECRET="bench-$$-secret"

SENDERS="${BENCH_SENDERS:-10}" MESSAGES="${BENCH_MESSAGES:-5}"
scripts/run.sh -- bash -c '
  set -e
  echo; echo "== WhatsApp: signed webhook -> Rasa -> outbox -> Twilio-compatible server"
  .venv/bin/python scripts/bench_whatsapp.py --service-url "$PUBLIC_BASE_URL" \
    --sim-url "http://127.0.0.1:$TWILIO_SIMULATOR_PORT" --rasa-url "$RASA_URL" \
    --senders '"$SENDERS"' --messages '"$MESSAGES"'
  echo; echo "== Rasa gateway parse latency"
  .venv/bin/python scripts/bench_nlu.py --url "$RASA_URL" --requests 200 --concurrency 10
'
if [[ -f scripts/bench_email.py ]]; then
  echo; echo "== E-mail: 1,000 mails ingested from Dovecot, beside a bare IMAP fetch"
  .venv/bin/python scripts/bench_email.py
fi
