#!/usr/bin/env bash
# Runs the official OpenAI Python and Node clients, unchanged, against
# `tinyllm serve` on the shipped model (loopback only), and the Go client's
# tests (go test ./solutions/week3/day5 covers openai-go).
#
#   bash scripts/openai-clients/run.sh            install the pinned clients if needed, run both
#   bash scripts/openai-clients/run.sh --record DIR   also write every exchange to DIR (re-recording
#                                                 the W3D5 fixtures in testdata/w3d5/exchanges)
#
# The Python client goes into .venv-clients (pinned in python/requirements.txt),
# the Node client into node/node_modules (npm ci from package-lock.json).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

record=()
if [ "${1:-}" = "--record" ]; then
  record=(--record "$2")
fi

venv="$root/.venv-clients"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import openai' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$here/python/requirements.txt"
fi
if [ ! -d "$here/node/node_modules/openai" ]; then
  (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error)
fi

bin="$(mktemp -d)"
go build -o "$bin/tinyllm" ./cmd/tinyllm
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin/tinyllm" serve --host 127.0.0.1 --port "$port" "${record[@]}" >"$bin/serve.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$bin"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$bin/serve.log"; exit 1; }
  sleep 0.2
done
base="http://127.0.0.1:$port/v1"
"$venv/bin/python" "$here/python/check.py" "$base"
node "$here/node/check.mjs" "$base"
