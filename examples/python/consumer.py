"""Subscribes to Chorus topics on the bidirectional session and prints each
payload as one JSON line, answering the server's heartbeats with pings.

    python3 consumer.py localhost:8080 chat/general [more topics...] [--token T] [--count N] [--stubs DIR]

Only the stock gRPC toolchain and the stubs ./generate.sh made from proto/.
"""
import argparse
import json
import queue
import sys

import grpc

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("target", help="host:port of a Chorus node (cleartext HTTP/2)")
parser.add_argument("topics", nargs="+")
parser.add_argument("--token", default="python-consumer", help="a user token (in development mode, any name)")
parser.add_argument("--count", type=int, default=0, help="exit after this many payloads (0: run until interrupted)")
parser.add_argument("--stubs", default="gen", help="where ./generate.sh put the stubs")
args = parser.parse_args()

sys.path.insert(0, args.stubs)
from chorus.v1 import realtime_pb2, realtime_pb2_grpc  # noqa: E402

channel = grpc.insecure_channel(args.target)
stub = realtime_pb2_grpc.RealtimeServiceStub(channel)
commands = queue.Queue()
next_id = iter(range(1, 1 << 62))


def send(**command):
    commands.put(realtime_pb2.ConnectRequest(request_id=next(next_id), **command))


def outgoing():
    # The request stream: whatever the loop below queues, in order.
    while True:
        command = commands.get()
        if command is None:
            return
        yield command


session = stub.Connect(outgoing(), metadata=[("authorization", f"Bearer {args.token}")])
for topic in args.topics:
    send(subscribe=realtime_pb2.SubscribeRequest(topic=topic))

received = 0
try:
    for response in session:
        for frame in response.frames:
            kind = frame.WhichOneof("kind")
            if kind == "welcome":
                print(json.dumps({"welcome": {"connection_id": frame.welcome.connection_id, "user_id": frame.welcome.user_id}}), file=sys.stderr, flush=True)
            elif kind == "heartbeat":
                send(ping=realtime_pb2.PingRequest())  # the server drops a session that stays silent
            elif kind == "reply" and frame.reply.WhichOneof("result") == "error":
                print(json.dumps({"refused": frame.reply.error.message, "code": frame.reply.error.code}), file=sys.stderr, flush=True)
            elif kind == "reply" and frame.reply.WhichOneof("result") == "subscribe":
                print(json.dumps({"subscribed": frame.reply.subscribe.topic}), file=sys.stderr, flush=True)
            elif kind == "payload":
                p = frame.payload
                print(json.dumps({"topic": p.topic, "event": p.event, "data": json.loads(p.data) if p.data else None, "seq": p.seq}), flush=True)
                received += 1
        if args.count and received >= args.count:
            break
except KeyboardInterrupt:
    pass
finally:
    commands.put(None)
    session.cancel()
