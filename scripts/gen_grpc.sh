#!/usr/bin/env bash
# Regenerate the protobuf modules of the gRPC protocol from the .proto files beside them:
#   src/inferd/protocol/_gen/{model_config,grpc_service}.proto -> *_pb2.py, *_pb2.pyi
# Usage: scripts/gen_grpc.sh [python]   (default .venv/bin/python; needs grpcio-tools)
#
# The modules register their descriptors in a private descriptor pool (inferd.protocol._gen
# .POOL) instead of protobuf's default one: tritonclient registers the very same message
# names (package `inference`) in the default pool, and a process that imports both would
# otherwise fail with "duplicate symbol". Only message code is generated; the server and the
# client bind the service's methods by name (see inferd.protocol.grpc_codec).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv/bin/python}"
OUT=src/inferd/protocol/_gen
rm -f "$OUT"/*_pb2.py "$OUT"/*_pb2.pyi
"$PY" -m grpc_tools.protoc -I src --python_out=src --pyi_out=src \
  "$OUT/model_config.proto" "$OUT/grpc_service.proto"
for module in "$OUT"/*_pb2.py; do
  before=$(grep -c '_descriptor_pool.Default()' "$module" || true)
  if [ "$before" != 1 ]; then
    echo "gen_grpc: expected one _descriptor_pool.Default() in $module, found $before" >&2
    exit 1
  fi
  sed -i \
    -e 's/^from google.protobuf import descriptor_pool as _descriptor_pool$/from inferd.protocol._gen import POOL as _POOL/' \
    -e 's/_descriptor_pool.Default()/_POOL/' "$module"
done
echo "gen_grpc: wrote $(ls "$OUT"/*_pb2.py* | tr '\n' ' ')"
