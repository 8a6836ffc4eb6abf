# Shared by the .ci scripts that start a queuehub: source it, then call wait_healthy.

# wait_healthy NAME URL PID: waits up to 30 s until URL/healthz answers. Fails (exit 1, with
# NAME in the message) if the process PID exits first or nothing answers in time.
wait_healthy() {
  local name="$1" url="$2" pid="$3"
  local deadline=$((SECONDS + 30))
  until curl -fsS --max-time 2 "$url/healthz" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name: queuehub exited before it became healthy" >&2
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      echo "$name: $url/healthz did not answer within 30 s" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "   healthy"
}
