#!/usr/bin/env bash
# `make run`: start the whole product on its embedded defaults (SQLite, in-process events).
# Starts the Twilio simulator when no Twilio credentials are configured, the Rasa server, the
# worker and the service; Ctrl-C stops them all.
#
# `scripts/run.sh -- COMMAND…` starts the same stack, runs COMMAND against it, stops everything
# and exits with COMMAND's status (used by `make bench`).
#
# Every process is supervised: one that dies (a crash, an OOM kill, `kill -9`) is started again
# after a backoff (1 s, doubling up to RUN_MAX_BACKOFF seconds, back to 1 s once it has run for a
# minute), with a "run: NAME exited …; restarting" line; the others keep running. Each current
# pid is in $RUN_DIR/NAME.pid (default var/run). Production: deploy/systemd/ or the Procfile.
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

RUN_DIR="${RUN_DIR:-var/run}"
RUN_MAX_BACKOFF="${RUN_MAX_BACKOFF:-30}"
mkdir -p "$RUN_DIR"

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

supervise() {  # supervise NAME COMMAND… — run COMMAND, start it again whenever it exits
  local name="$1"
  shift
  rm -f "$RUN_DIR/$name.pid"
  (
    set +e
    child=""
    stop() {
      [[ -n "$child" ]] && kill "$child" 2>/dev/null && wait "$child" 2>/dev/null
      rm -f "$RUN_DIR/$name.pid"
      exit 0
    }
    trap stop INT TERM
    delay=1
    while true; do
      started=$SECONDS
      "$@" &
      child=$!
      echo "$child" > "$RUN_DIR/$name.pid"
      wait "$child"
      status=$?
      ran=$((SECONDS - started))
      if ((ran >= 60)); then delay=1; fi
      echo "run: $name (pid $child) exited with status $status after ${ran}s; restarting in ${delay}s" >&2
      sleep "$delay" &
      wait $!
      delay=$((delay * 2 > RUN_MAX_BACKOFF ? RUN_MAX_BACKOFF : delay * 2))
    done
  ) &
  pids+=($!)
}

wait_port() {  # wait_port PORT NAME SUPERVISOR_PID — fail fast if the first start dies
  local first=""
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { echo "run: $2 exited" >&2; return 1; }
    [[ -z "$first" && -s "$RUN_DIR/$2.pid" ]] && first="$(cat "$RUN_DIR/$2.pid")"
    if [[ -n "$first" ]] && ! kill -0 "$first" 2>/dev/null; then
      echo "run: $2 exited before opening port $1 (see the lines above)" >&2
      return 1
    fi
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
  supervise twilio-simulator .venv/bin/python -m api.devtools.twilio_simulator \
    --port "$TWILIO_SIMULATOR_PORT" --webhook-base "$PUBLIC_BASE_URL" \
    --account-sid "$TWILIO_ACCOUNT_SID" --auth-token "$TWILIO_AUTH_TOKEN" \
    --whatsapp-number "$TWILIO_WHATSAPP_FROM"
  wait_port "$TWILIO_SIMULATOR_PORT" twilio-simulator "${pids[-1]}"
  echo "run: no Twilio credentials: local Twilio simulator on $TWILIO_API_BASE_URL"
fi

# WHATSAPP_PROVIDER=meta|360dialog|zapi|ultramsg without that provider's credentials: its local
# simulator (api/devtools/whatsapp_provider_sim.py) with the simulator's development credentials.
start_provider_simulator() {  # NAME MODULE PORT — then the caller's exports point at it
  supervise "$1-simulator" .venv/bin/python -m "api.devtools.$2" --port "$3" \
    --webhook-base "$PUBLIC_BASE_URL"
  wait_port "$3" "$1-simulator" "${pids[-1]}"
  echo "run: no $1 credentials: local $1 simulator on http://127.0.0.1:$3"
}
SIM_NUMBER="+5511940000001"
case "${WHATSAPP_PROVIDER:-twilio}" in
  meta)
    if [[ -z "${META_ACCESS_TOKEN:-}" ]]; then
      export META_APP_SECRET="dev-meta-app-secret" META_ACCESS_TOKEN="dev-meta-access-token"
      export META_VERIFY_TOKEN="dev-meta-verify-token" META_PHONE_NUMBER_ID="100000000000001"
      export META_NUMBER="$SIM_NUMBER" META_GRAPH_URL="http://127.0.0.1:8101/v21.0"
      start_provider_simulator meta meta_simulator 8101
    fi ;;
  360dialog)
    if [[ -z "${D360_API_KEY:-}" ]]; then
      export D360_API_KEY="dev-d360-api-key" D360_WEBHOOK_SECRET="dev-webhook-secret"
      export D360_NUMBER="$SIM_NUMBER" D360_BASE_URL="http://127.0.0.1:8102"
      start_provider_simulator 360dialog dialog360_simulator 8102
    fi ;;
  zapi)
    if [[ -z "${ZAPI_TOKEN:-}" ]]; then
      export ZAPI_INSTANCE_ID="3C0FFEE0000000000000000000000001" ZAPI_TOKEN="dev-instance-token"
      export ZAPI_CLIENT_TOKEN="dev-zapi-client-token" ZAPI_WEBHOOK_SECRET="dev-webhook-secret"
      export ZAPI_NUMBER="$SIM_NUMBER" ZAPI_BASE_URL="http://127.0.0.1:8103"
      start_provider_simulator zapi zapi_simulator 8103
    fi ;;
  ultramsg)
    if [[ -z "${ULTRAMSG_TOKEN:-}" ]]; then
      export ULTRAMSG_INSTANCE_ID="3C0FFEE0000000000000000000000001"
      export ULTRAMSG_TOKEN="dev-instance-token" ULTRAMSG_WEBHOOK_SECRET="dev-webhook-secret"
      export ULTRAMSG_NUMBER="$SIM_NUMBER" ULTRAMSG_BASE_URL="http://127.0.0.1:8104"
      start_provider_simulator ultramsg ultramsg_simulator 8104
    fi ;;
esac

supervise service .venv/bin/tratativa serve --port "$PORT"
wait_port "$PORT" "service" "${pids[-1]}"

supervise rasa scripts/rasa-serve.sh
echo "run: loading the Rasa model (about a minute)…"
wait_port "$RASA_PORT" rasa "${pids[-1]}"

supervise worker .venv/bin/tratativa worker

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
Chat as an infringer of a demo case:  .venv/bin/tratativa chat --phone +5511987654321 --provider ${WHATSAPP_PROVIDER:-twilio}
A process that dies is restarted (a "run: … restarting" line says so).
Ctrl-C stops everything.
MSG
wait
