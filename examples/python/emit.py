"""Emits one event into a Chorus topic as a back end (ServerService.Emit, API key).

    python3 emit.py localhost:8080 chat/general message '{"text": "hi"}' [--persist] [--api-key K] [--stubs DIR]
"""
import argparse
import json
import sys

import grpc

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("target")
parser.add_argument("topic")
parser.add_argument("event")
parser.add_argument("data", help="JSON text")
parser.add_argument("--persist", action="store_true", help="keep it in the topic's history")
parser.add_argument("--api-key", default="", help="one of the server's CHORUS_API_KEYS (none in development mode)")
parser.add_argument("--stubs", default="gen")
args = parser.parse_args()

sys.path.insert(0, args.stubs)
from chorus.v1 import server_pb2, server_pb2_grpc  # noqa: E402

json.loads(args.data)  # refuse anything that is not JSON here, before the server does
stub = server_pb2_grpc.ServerServiceStub(grpc.insecure_channel(args.target))
metadata = [("authorization", f"Bearer {args.api_key}")] if args.api_key else []
try:
    reply = stub.Emit(server_pb2.EmitRequest(topic=args.topic, event=args.event, data=args.data, persist=args.persist), metadata=metadata, timeout=10)
except grpc.RpcError as error:
    print(f"emit: {error.details()} ({error.code().name})", file=sys.stderr)
    sys.exit(1)
print(json.dumps({"id": reply.id, "seq": reply.position.seq}))
