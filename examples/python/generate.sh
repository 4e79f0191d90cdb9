#!/bin/sh
# Generates the Python stubs from the repository's .proto files (nothing
# generated is committed). Needs grpcio-tools: Debian's python3-grpc-tools,
# or `pip install grpcio grpcio-tools` (PYTHON picks the interpreter).
#   ./generate.sh [output directory, default ./gen]
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/gen}"
mkdir -p "$out"
"${PYTHON:-python3}" -m grpc_tools.protoc -I"$here/../../proto" --python_out="$out" --grpc_python_out="$out" \
  chorus/v1/payload.proto chorus/v1/realtime.proto chorus/v1/server.proto
echo "stubs in $out"
