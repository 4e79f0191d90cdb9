"""A stock Python gRPC client for Chorus, built from proto/ alone.

Run by test/interop/grpcio.test.ts with Debian's python3-grpcio: the stubs
are generated into a scratch directory first (python3 -m grpc_tools.protoc),
never committed. Prints one JSON line of what it observed.
"""
import json
import queue
import sys
import threading

import grpc

sys.path.insert(0, sys.argv[2])
from chorus.v1 import payload_pb2, realtime_pb2, realtime_pb2_grpc, server_pb2, server_pb2_grpc  # noqa: E402

target = sys.argv[1]
channel = grpc.insecure_channel(target)
grpc.channel_ready_future(channel).result(timeout=10)
stub = realtime_pb2_grpc.RealtimeServiceStub(channel)
auth = [("authorization", "Bearer py-user")]
out = {}

# Unary: Publish (persisted) and GetHistory.
published = stub.Publish(realtime_pb2.PublishRequest(topic="chat/python", event="m", data='{"n":1}', persist=True), metadata=auth, timeout=10)
out["published_seq"] = published.position.seq
history = stub.GetHistory(realtime_pb2.GetHistoryRequest(topic="chat/python", limit=10), metadata=auth, timeout=10)
out["history"] = [m.data for m in history.messages]

# The bidirectional session: subscribe, publish, receive the payload, ping.
requests = queue.Queue()


def frames():
    while True:
        item = requests.get()
        if item is None:
            return
        yield item


session = stub.Connect(frames(), metadata=auth, timeout=20)
requests.put(realtime_pb2.ConnectRequest(request_id=1, subscribe=realtime_pb2.SubscribeRequest(topic="chat/python-live")))
seen = {"welcome": False, "replies": [], "payloads": []}
for response in session:
    for frame in response.frames:
        kind = frame.WhichOneof("kind")
        if kind == "welcome":
            seen["welcome"] = True
        elif kind == "reply":
            seen["replies"].append(frame.reply.request_id)
            if frame.reply.request_id == 1:
                requests.put(realtime_pb2.ConnectRequest(request_id=2, publish=realtime_pb2.PublishRequest(topic="chat/python-live", event="m", data='"live"')))
        elif kind == "payload" and frame.payload.type == payload_pb2.PAYLOAD_TYPE_EVENT:
            seen["payloads"].append(frame.payload.data)
            requests.put(realtime_pb2.ConnectRequest(request_id=3, ping=realtime_pb2.PingRequest()))
    if 3 in seen["replies"]:
        break
requests.put(None)
session.cancel()
out["bidi"] = seen

# Listen + unary Subscribe naming the session, then an emit reaches the stream.
listen = stub.Listen(realtime_pb2.ListenRequest(client="python"), metadata=auth, timeout=20)
first = next(listen)
session_id = first.frames[0].welcome.session_id
stub.Subscribe(realtime_pb2.SubscribeRequest(session_id=session_id, topic="chat/python-listen"), metadata=auth, timeout=10)
stub.Publish(realtime_pb2.PublishRequest(session_id=session_id, topic="chat/python-listen", event="m", data='"via listen"'), metadata=auth, timeout=10)
received = None
for response in listen:
    for frame in response.frames:
        if frame.WhichOneof("kind") == "payload":
            received = frame.payload.data
    if received:
        break
listen.cancel()
out["listen"] = {"session_id": bool(session_id), "received": received}


# A token stream from a back end: client streaming (ServerService.EmitStream).
server_stub = server_pb2_grpc.ServerServiceStub(channel)


def stream_requests():
    yield server_pb2.EmitStreamRequest(topic="ai/python", event="answer", stream_id="py-stream", meta='{"lang":"python"}')
    for token in ["Hello", ", ", "gRPC"]:
        yield server_pb2.EmitStreamRequest(text=token)
    yield server_pb2.EmitStreamRequest(status=payload_pb2.STREAM_STATUS_DONE)


streamed = server_stub.EmitStream(stream_requests(), timeout=10)
ended = stub.GetHistory(realtime_pb2.GetHistoryRequest(topic="ai/python", limit=10), metadata=auth, timeout=10)
out["stream"] = {
    "chunks": streamed.chunks,
    "status": payload_pb2.StreamStatus.Name(streamed.status),
    "history": [(m.event, json.loads(m.data)["text"]) for m in ended.messages],
}


# Bad input: each call's status code.
def code_of(call):
    try:
        call()
        return "OK"
    except grpc.RpcError as error:
        return error.code().name


out["codes"] = {
    "bad_topic": code_of(lambda: stub.Publish(realtime_pb2.PublishRequest(topic="no spaces/here", event="m"), metadata=auth, timeout=10)),
    "limit_too_large": code_of(lambda: stub.GetHistory(realtime_pb2.GetHistoryRequest(topic="chat/python", limit=5000), metadata=auth, timeout=10)),
    "unknown_session": code_of(lambda: stub.Subscribe(realtime_pb2.SubscribeRequest(session_id="nope", topic="chat/x"), metadata=auth, timeout=10)),
    "bad_json": code_of(lambda: stub.Publish(realtime_pb2.PublishRequest(topic="chat/x", event="m", data="{nope"), metadata=auth, timeout=10)),
    "not_protobuf": code_of(
        lambda: channel.unary_unary("/chorus.v1.RealtimeService/GetHistory", request_serializer=lambda b: b, response_deserializer=lambda b: b)(b"\x0a\xff\xff\xff\x0f", metadata=auth, timeout=10)
    ),
    "unknown_method": code_of(
        lambda: channel.unary_unary("/chorus.v1.RealtimeService/NoSuchMethod", request_serializer=lambda b: b, response_deserializer=lambda b: b)(b"", metadata=auth, timeout=10)
    ),
    "unknown_service": code_of(
        lambda: channel.unary_unary("/acme.v1.Nothing/Here", request_serializer=lambda b: b, response_deserializer=lambda b: b)(b"", metadata=auth, timeout=10)
    ),
    "bad_token": code_of(lambda: stub.GetHistory(realtime_pb2.GetHistoryRequest(topic="chat/python"), metadata=[("authorization", "Basic nope")], timeout=10)),
}
print(json.dumps(out))
