#!/usr/bin/env bash
# `make run`: start the whole product on its embedded defaults (SQLite, in-process events).
# Starts the Twilio simulator when no Twilio credentials are configured, the Rasa server, the
# worker and the service; Ctrl-C stops them all.
#
# `scripts/run.sh -- COMMAND…` starts the same stack, runs COMMAND against it, stops everything
# and exits with COMMAND's status (used by `make bench`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ "${1:-}" == "--" ]] && shift
[[ -f .env ]] && { set -a; . ./.env; set +a; }

export PORT="${PORT:-8000}"
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://127.0.0.1:$PORT}"
export RASA_PORT="${RASA_PORT:-5005}"
export RASA_URL="${RASA_URL:-http://127.0.0.1:$RASA_PORT}"
export RASA_GATEWAY_SECRET="${RASA_GATEWAY_SECRET:-dev-gateway-secret}"
export ACTION_ENDPOINT_TOKEN="${ACTION_ENDPOINT_TOKEN:-dev-action-token}"
export ACTION_ENDPOINT_URL="${ACTION_ENDPOINT_URL:-http://127.0.0.1:$PORT/actions/webhook}"

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_port() {  # wait_port PORT NAME PID
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { echo "run: $2 exited" >&2; return 1; }
    sleep 0.5
  done
  echo "run: $2 did not open port $1" >&2
  return 1
}

mkdir -p var
.venv/bin/tratativa setup
export SECRET_KEY="${SECRET_KEY:-$(cat var/secret_key)}"  # setup made it (0600) if unset
scripts/rasa-train.sh

if [[ -z "${TWILIO_ACCOUNT_SID:-}" ]]; then
  export TWILIO_ACCOUNT_SID="AC00000000000000000000000000000001"
  export TWILIO_AUTH_TOKEN="dev-twilio-auth-token"
  export TWILIO_WHATSAPP_FROM="whatsapp:+14155238886"
  export TWILIO_SIMULATOR_PORT="${TWILIO_SIMULATOR_PORT:-8099}"
  export TWILIO_API_BASE_URL="http://127.0.0.1:$TWILIO_SIMULATOR_PORT"
  export TRATATIVA_TWILIO_SIM_URL="$TWILIO_API_BASE_URL"
  .venv/bin/python -m api.devtools.twilio_simulator --port "$TWILIO_SIMULATOR_PORT" \
    --webhook-base "$PUBLIC_BASE_URL" --account-sid "$TWILIO_ACCOUNT_SID" \
    --auth-token "$TWILIO_AUTH_TOKEN" --whatsapp-number "$TWILIO_WHATSAPP_FROM" &
  pids+=($!)
  wait_port "$TWILIO_SIMULATOR_PORT" "Twilio simulator" "${pids[-1]}"
  echo "run: no Twilio credentials: local Twilio simulator on $TWILIO_API_BASE_URL"
fi

.venv/bin/tratativa serve --port "$PORT" &
pids+=($!)
wait_port "$PORT" "service" "${pids[-1]}"

scripts/rasa-serve.sh &
pids+=($!)
echo "run: loading the Rasa model (about a minute)…"
wait_port "$RASA_PORT" "Rasa" "${pids[-1]}"

.venv/bin/tratativa worker &
pids+=($!)

if [[ $# -gt 0 ]]; then
  status=0
  "$@" || status=$?
  exit "$status"
fi

cat <<MSG

Tratativa is running:
  API and docs   $PUBLIC_BASE_URL/docs
  Panel          $PUBLIC_BASE_URL/painel
  Rasa           $RASA_URL (gateway only)
Chat as an infringer of a demo case:  .venv/bin/tratativa chat --phone +5511987654321
Ctrl-C stops everything.
MSG
wait -n "${pids[@]}"
