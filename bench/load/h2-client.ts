// A minimal cleartext HTTP/2 client for the load generators: request
// streams on one connection, response DATA handed over as it arrives,
// windows returned as it is read. Node's own client costs about as much CPU
// per DATA frame as the server under test spends writing it, and the
// generators share the machine with that server; this one reads the socket
// and little else. Response headers are not decoded: the generators only
// count and read DATA.
import * as net from "node:net";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const DATA = 0;
const HEADERS = 1;
const RST_STREAM = 3;
const SETTINGS = 4;
const PING = 6;
const GOAWAY = 7;
const WINDOW_UPDATE = 8;
const END_STREAM = 1;
const ACK = 1;
const END_HEADERS = 4;
const PADDED = 8;
const INITIAL_WINDOW_SIZE = 4;
const DEFAULT_WINDOW = 65_535;
/** Receive window per stream and per connection: what browsers and gRPC clients use, not Node's 64 KiB. */
const WINDOW = 1 << 20;

export interface LeanStream {
  /** Sends request body bytes (small here: subscribe, ping and publish commands). */
  write(bytes: Buffer): void;
}

export interface LeanConnection {
  request(method: string, path: string, headers: Record<string, string>, onData: (chunk: Buffer) => void): LeanStream;
  close(): void;
}

interface StreamState {
  onData: (chunk: Buffer) => void;
  unacked: number;
  sendWindow: number;
  blocked: Buffer[];
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(9 + payload.length);
  out.writeUIntBE(payload.length, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(streamId, 5);
  payload.copy(out, 9);
  return out;
}

function u32(value: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(value, 0);
  return out;
}

/** HPACK literal fields without indexing, raw strings (short ones only). */
function headerBlock(fields: Array<[string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    if (name.length > 126 || value.length > 126) throw new Error(`header ${name} too long for this client`);
    parts.push(Buffer.from([0, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value));
  }
  return Buffer.concat(parts);
}

export function leanConnect(url: string): Promise<LeanConnection> {
  const { hostname, port } = new URL(url);
  const socket = net.connect({ host: hostname, port: Number(port), noDelay: true });
  const streams = new Map<number, StreamState>();
  let nextId = 1;
  let input: Buffer = Buffer.alloc(0);
  let unackedConnection = 0;
  // The server's windows for what we send.
  let connectionWindow = DEFAULT_WINDOW;
  let peerStreamWindow = DEFAULT_WINDOW;

  const send = (id: number, state: StreamState, bytes: Buffer) => {
    let offset = 0;
    while (offset < bytes.length && state.blocked.length === 0) {
      const n = Math.min(bytes.length - offset, connectionWindow, state.sendWindow, 16_384);
      if (n <= 0) break;
      socket.write(frame(DATA, 0, id, bytes.subarray(offset, offset + n)));
      connectionWindow -= n;
      state.sendWindow -= n;
      offset += n;
    }
    if (offset < bytes.length) state.blocked.push(bytes.subarray(offset));
  };
  const unblock = (id: number, state: StreamState) => {
    const waiting = state.blocked;
    state.blocked = [];
    for (const bytes of waiting) send(id, state, bytes);
  };

  const onFrame = (type: number, flags: number, streamId: number, payload: Buffer) => {
    if (type === DATA) {
      const state = streams.get(streamId);
      const body = flags & PADDED ? payload.subarray(1, payload.length - payload[0]!) : payload;
      if (state && body.length) state.onData(body);
      unackedConnection += payload.length;
      if (unackedConnection >= WINDOW / 2) {
        socket.write(frame(WINDOW_UPDATE, 0, 0, u32(unackedConnection)));
        unackedConnection = 0;
      }
      if (!state) return;
      state.unacked += payload.length;
      if (state.unacked >= WINDOW / 2 && !(flags & END_STREAM)) {
        socket.write(frame(WINDOW_UPDATE, 0, streamId, u32(state.unacked)));
        state.unacked = 0;
      }
    } else if (type === SETTINGS && !(flags & ACK)) {
      for (let at = 0; at + 6 <= payload.length; at += 6) {
        if (payload.readUInt16BE(at) !== INITIAL_WINDOW_SIZE) continue;
        const value = payload.readUInt32BE(at + 2);
        for (const state of streams.values()) state.sendWindow += value - peerStreamWindow;
        peerStreamWindow = value;
      }
      socket.write(frame(SETTINGS, ACK, 0, Buffer.alloc(0)));
    } else if (type === PING && !(flags & ACK)) {
      socket.write(frame(PING, ACK, 0, payload));
    } else if (type === WINDOW_UPDATE) {
      const increment = payload.readUInt32BE(0) & 0x7fffffff;
      if (streamId === 0) {
        connectionWindow += increment;
        for (const [id, state] of streams) unblock(id, state);
      } else {
        const state = streams.get(streamId);
        if (!state) return;
        state.sendWindow += increment;
        unblock(streamId, state);
      }
    } else if (type === RST_STREAM || type === GOAWAY) {
      socket.destroy();
    }
    // HEADERS (response headers, trailers) are not needed by the generators.
  };

  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.on("data", (chunk: Buffer) => {
      const buf = input.length ? Buffer.concat([input, chunk]) : chunk;
      let pos = 0;
      while (buf.length - pos >= 9) {
        const length = buf.readUIntBE(pos, 3);
        if (buf.length - pos < 9 + length) break;
        onFrame(buf[pos + 3]!, buf[pos + 4]!, buf.readUInt32BE(pos + 5) & 0x7fffffff, buf.subarray(pos + 9, pos + 9 + length));
        pos += 9 + length;
      }
      input = pos === buf.length ? Buffer.alloc(0) : buf.subarray(pos);
    });
    socket.on("connect", () => {
      const settings = Buffer.alloc(12);
      settings.writeUInt16BE(2, 0); // ENABLE_PUSH 0
      settings.writeUInt16BE(INITIAL_WINDOW_SIZE, 6);
      settings.writeUInt32BE(WINDOW, 8);
      socket.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, settings), frame(WINDOW_UPDATE, 0, 0, u32(WINDOW - DEFAULT_WINDOW))]));
      resolve({
        request(method, path, headers, onData) {
          const id = nextId;
          nextId += 2;
          const state: StreamState = { onData, unacked: 0, sendWindow: peerStreamWindow, blocked: [] };
          streams.set(id, state);
          const fields: Array<[string, string]> = [[":method", method], [":scheme", "http"], [":authority", `${hostname}:${port}`], [":path", path], ...Object.entries(headers)];
          socket.write(frame(HEADERS, END_HEADERS, id, headerBlock(fields)));
          return { write: (bytes) => send(id, state, bytes) };
        },
        close: () => socket.destroy(),
      });
    });
  });
}
