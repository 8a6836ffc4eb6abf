#!/usr/bin/env bash
# Runs the work-queue example (client-examples/worker) against a real queuehub: installs its
# npm packages, starts the given binary on a free loopback port with a temporary data dir,
# runs `node run.js`, and stops the server. Exits non-zero if anything failed.
#
#   .ci/smoke-worker.sh path/to/queuehub
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=SCRIPTDIR/lib.sh
source "$root/.ci/lib.sh"
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"

(cd "$root/client-examples/worker" && npm ci --no-audit --no-fund --loglevel=error)

port="$(free_port 0)"
start_queuehub smoke-worker "$port" "$bin" --data-dir "$qh_work/data"

cd "$root/client-examples/worker"
QUEUEHUB_URL="$qh_url" node run.js
