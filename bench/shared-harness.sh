#!/bin/bash
# The shared harness (/work/shared/bench/measure.sh) against pacsnode and a real Orthanc 1.10.1 in the same sitting.
# See bench/README.md, "The shared harness, side by side".
#
#   bench/shared-harness.sh [pacsnode|orthanc ...]        (default: pacsnode orthanc)
#
# Without ROUNDS: each target in turn, measure.sh once with RUNS repetitions, each target on fresh storage.
# With ROUNDS=N: both servers are started once, then measure.sh runs N times per target, alternating (pacsnode,
# Orthanc, pacsnode, ...; use RUNS=1), so that both see the same machine load; the medians over the rounds are
# printed per figure at the end, with the ratio.
#
# Environment: DATA_DIR (default /tmp/dicom-bench/data-small, made by gen-data.py if missing), RUNS, QN, RN, PHASES
# (passed to measure.sh), ROUNDS, HARNESS (default /work/shared/bench), OUT (results folder, default
# /tmp/dicom-bench/results). pacsnode runs from dist/ (npm run build first) on HTTP 8044 / DICOM 4244, Orthanc on
# 8043 / 4243.
set -uo pipefail
HARNESS=${HARNESS:-/work/shared/bench}
export DATA_DIR=${DATA_DIR:-/tmp/dicom-bench/data-small}
OUT=${OUT:-/tmp/dicom-bench/results}
ROUNDS=${ROUNDS:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=/tmp/dicom-bench/pacsnode
STAMP=$(date +%Y%m%d-%H%M%S)
TARGETS=${*:-pacsnode orthanc}
mkdir -p "$OUT" "$WORK"
[ -f "$DATA_DIR/manifest.json" ] || /usr/bin/python3 "$HARNESS/gen-data.py" --preset small --out "$DATA_DIR" >&2
[ -f "$ROOT/dist/cli/main.js" ] || { echo "run npm run build first" >&2; exit 2; }

# pacsnode's configuration: the same settings as the Orthanc anchor's (orthanc-anchor.sh).
cat > "$WORK/pacsnode.json" <<EOF
{
  "Name" : "PACSNODE-BENCH",
  "StorageDirectory" : "$WORK/storage",
  "IndexDirectory" : "$WORK/storage",
  "HttpPort" : 8044, "DicomPort" : 4244, "DicomAet" : "PACSNODE",
  "RemoteAccessAllowed" : false, "AuthenticationEnabled" : false, "HttpCompressionEnabled" : false,
  "DicomCheckCalledAet" : false, "DicomCheckModalityHost" : true,
  "DicomAlwaysAllowEcho" : false, "DicomAlwaysAllowStore" : false, "DicomAlwaysAllowFind" : false,
  "DicomAlwaysAllowGet" : false, "DicomAlwaysAllowMove" : false,
  "DicomModalities" : {
    "storescp" : [ "STORESCP", "127.0.0.1", 11113 ], "findscu" : [ "FINDSCU", "127.0.0.1", 11114 ],
    "movescu" : [ "MOVESCU", "127.0.0.1", 11115 ], "getscu" : [ "GETSCU", "127.0.0.1", 11116 ],
    "storescu" : [ "STORESCU", "127.0.0.1", 11117 ], "echoscu" : [ "ECHOSCU", "127.0.0.1", 11118 ]
  },
  "SaveJobs" : false, "SynchronousCMove" : true, "StableAge" : 60, "OverwriteInstances" : false,
  "DicomWeb" : { "Enable" : true, "Root" : "/dicom-web/", "EnableWado" : true, "WadoRoot" : "/wado", "Host" : "127.0.0.1:8044" }
}
EOF

PACSNODE_PID=
start() {
  if [ "$1" = orthanc ]; then
    "$HARNESS/orthanc-anchor.sh" start > /dev/null || exit 1
  else
    rm -rf "$WORK/storage"
    UV_THREADPOOL_SIZE=16 node "$ROOT/dist/cli/main.js" serve --config "$WORK/pacsnode.json" > "$WORK/log.txt" 2>&1 &
    PACSNODE_PID=$!
    for _ in $(seq 1 100); do curl -sf http://127.0.0.1:8044/system > /dev/null && break; sleep 0.2; done
  fi
}
stop() {
  if [ "$1" = orthanc ]; then "$HARNESS/orthanc-anchor.sh" stop > /dev/null; else kill "$PACSNODE_PID"; wait "$PACSNODE_PID"; fi
}
measure() {
  echo "# $1 $(date -Is) load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  if [ "$1" = orthanc ]; then
    TARGET_PID=$(cat /tmp/dicom-bench/orthanc/orthanc.pid) TARGET_STORAGE_DIR=/tmp/dicom-bench/orthanc/storage \
      LABEL=orthanc OUT_FILE="$OUT/$STAMP-orthanc.txt" \
      "$HARNESS/measure.sh" http://127.0.0.1:8043 127.0.0.1 4243 ORTHANC 2>/dev/null
  else
    TARGET_PID=$PACSNODE_PID TARGET_STORAGE_DIR="$WORK/storage" LABEL=pacsnode OUT_FILE="$OUT/$STAMP-pacsnode.txt" \
      "$HARNESS/measure.sh" http://127.0.0.1:8044 127.0.0.1 4244 PACSNODE 2>/dev/null
  fi
}

if [ -z "$ROUNDS" ]; then
  for target in $TARGETS; do start "$target"; measure "$target"; stop "$target"; done
else
  for target in $TARGETS; do start "$target"; done
  for _ in $(seq 1 "$ROUNDS"); do for target in $TARGETS; do measure "$target" > /dev/null; done; done
  for target in $TARGETS; do stop "$target"; done
  # Median over the rounds of each figure's median, per target, and pacsnode / Orthanc.
  node "$ROOT/bench/shared-harness-summary.mjs" "$OUT/$STAMP-pacsnode.txt" "$OUT/$STAMP-orthanc.txt"
fi
echo "# results in $OUT/$STAMP-*.txt" >&2
