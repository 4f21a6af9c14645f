#!/usr/bin/env bash
# Train the Tratativa Rasa model into models/tratativa.tar.gz.
#
# Rasa 3.6 always writes a new archive (its .rasa/cache only skips unchanged components), so
# this script hashes what the model is made of (config, domain, training data, the code of
# our components, the Rasa requirements) into models/tratativa.fingerprint and skips training
# when the archive exists and the hash is unchanged. FORCE=1 retrains anyway.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RASA_VENV="${RASA_VENV:-$ROOT/.venv-rasa}"
MODEL_NAME=tratativa
MODEL="models/$MODEL_NAME.tar.gz"
FINGERPRINT_FILE="models/$MODEL_NAME.fingerprint"

if [[ ! -x "$RASA_VENV/bin/rasa" ]]; then
  echo "rasa-train: no Rasa environment at $RASA_VENV (run: make .venv-rasa/.installed)" >&2
  exit 1
fi

inputs() {
  ls config.yml domain.yml requirements-rasa.txt
  [[ -d domain ]] && find domain -type f -name '*.yml'
  find data -type f \( -name '*.yml' -o -name '*.yaml' \)
  find bot api/identifiers -type f -name '*.py'
}
fingerprint="$(inputs | LC_ALL=C sort | while read -r f; do printf '%s\n' "$f"; cat "$f"; done | sha256sum | cut -d' ' -f1)"

if [[ "${FORCE:-0}" != 1 && -f "$MODEL" && -f "$FINGERPRINT_FILE" \
      && "$(cat "$FINGERPRINT_FILE")" == "$fingerprint" ]]; then
  echo "rasa-train: $MODEL is up to date (fingerprint ${fingerprint:0:12}); FORCE=1 retrains"
  exit 0
fi

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export RASA_TELEMETRY_ENABLED="${RASA_TELEMETRY_ENABLED:-false}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export RASA_CACHE_DIRECTORY="${RASA_CACHE_DIRECTORY:-$ROOT/var/rasa-cache}"
mkdir -p models "$RASA_CACHE_DIRECTORY"

started=$(date +%s.%N)
"$RASA_VENV/bin/rasa" train \
  --config config.yml \
  --domain domain.yml \
  --data data \
  --out models \
  --fixed-model-name "$MODEL_NAME" \
  "$@"
finished=$(date +%s.%N)
echo "$fingerprint" > "$FINGERPRINT_FILE"
awk -v m="$MODEL" -v a="$started" -v b="$finished" 'BEGIN { printf "rasa-train: trained %s in %.1f s\n", m, b - a }'
