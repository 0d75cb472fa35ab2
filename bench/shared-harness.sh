#!/bin/bash
# The shared harness (/work/shared/bench/measure.sh) against pacsnode and a real Orthanc 1.10.1, one after the
# other in the same sitting, each on fresh storage. See bench/README.md, "The shared harness, side by side".
#
#   bench/shared-harness.sh [pacsnode|orthanc ...]        (default: pacsnode orthanc)
#
# Environment: DATA_DIR (default /tmp/dicom-bench/data-small, made by gen-data.py if missing), RUNS, QN, RN, PHASES
# (passed to measure.sh), HARNESS (default /work/shared/bench), OUT (results folder, default /tmp/dicom-bench/results).
# pacsnode runs from dist/ (npm run build first) on HTTP 8044 / DICOM 4244, Orthanc on 8043 / 4243.
set -uo pipefail
HARNESS=${HARNESS:-/work/shared/bench}
export DATA_DIR=${DATA_DIR:-/tmp/dicom-bench/data-small}
OUT=${OUT:-/tmp/dicom-bench/results}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=/tmp/dicom-bench/pacsnode
STAMP=$(date +%Y%m%d-%H%M%S)
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

for who in "${@:-pacsnode orthanc}"; do
  for target in $who; do
    echo "# $target $(date -Is) load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    if [ "$target" = orthanc ]; then
      "$HARNESS/orthanc-anchor.sh" start > /dev/null || exit 1
      TARGET_PID=$(cat /tmp/dicom-bench/orthanc/orthanc.pid) TARGET_STORAGE_DIR=/tmp/dicom-bench/orthanc/storage \
        LABEL=orthanc OUT_FILE="$OUT/$STAMP-orthanc.txt" \
        "$HARNESS/measure.sh" http://127.0.0.1:8043 127.0.0.1 4243 ORTHANC 2>/dev/null
      "$HARNESS/orthanc-anchor.sh" stop > /dev/null
    else
      rm -rf "$WORK/storage"
      UV_THREADPOOL_SIZE=16 node "$ROOT/dist/cli/main.js" serve --config "$WORK/pacsnode.json" > "$WORK/log.txt" 2>&1 &
      PID=$!
      for _ in $(seq 1 100); do curl -sf http://127.0.0.1:8044/system > /dev/null && break; sleep 0.2; done
      TARGET_PID=$PID TARGET_STORAGE_DIR="$WORK/storage" LABEL=pacsnode OUT_FILE="$OUT/$STAMP-pacsnode.txt" \
        "$HARNESS/measure.sh" http://127.0.0.1:8044 127.0.0.1 4244 PACSNODE 2>/dev/null
      kill "$PID"; wait "$PID"
    fi
  done
done
echo "# results in $OUT/$STAMP-*.txt" >&2
