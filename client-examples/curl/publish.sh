#!/usr/bin/env bash
# Publish one message to a queuehub queue over HTTP.
#
#   ./publish.sh QUEUE EVENT [PAYLOAD_JSON]
#   ./publish.sh acme-widgets delivered '{"orderId":"1001","customer":"Ada"}'
#
# PAYLOAD_JSON is any JSON value (object, array, string in quotes, number, ...); default {}.
# Environment: QUEUEHUB_URL (default http://127.0.0.1:3000); ID, optional, makes the publish
# idempotent (publishing the same ID to the same queue again returns the first result).
# Prints the server's JSON answer; exits non-zero if the server refused the message.
set -euo pipefail

usage() {
  echo "usage: $0 QUEUE EVENT [PAYLOAD_JSON]" >&2
  echo "  e.g. $0 acme-widgets delivered '{\"orderId\":\"1001\"}'" >&2
  exit 2
}
[[ $# -ge 2 && $# -le 3 ]] || usage

url="${QUEUEHUB_URL:-http://127.0.0.1:3000}"
url="${url%/}"
queue="$1"
event="$2"
payload="${3:-{\}}"

# JSON string literal for a name (names cannot hold control characters, so escaping the
# backslash and the quote is enough).
json_string() {
  local s="${1//\\/\\\\}"
  s="${s//\"/\\\"}"
  printf '"%s"' "$s"
}

# Percent-encode a path segment.
urlencode() {
  local LC_ALL=C s="$1" out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
      [a-zA-Z0-9._~-]) out+="$c" ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

body="{\"event\":$(json_string "$event"),\"payload\":${payload}"
if [[ -n "${ID:-}" ]]; then
  body+=",\"id\":$(json_string "$ID")"
fi
body+="}"

response="$(mktemp)"
trap 'rm -f "$response"' EXIT
status="$(curl -sS --max-time 10 -o "$response" -w '%{http_code}' \
  -X POST "$url/v1/queues/$(urlencode "$queue")/messages" \
  -H 'Content-Type: application/json' \
  --data-binary "$body")"
cat "$response"
echo
if [[ "$status" != 2* ]]; then
  echo "publish.sh: HTTP $status from $url" >&2
  exit 1
fi
