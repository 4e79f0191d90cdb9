import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { expect, it } from "vitest";
import { ROOT, serverForSuite } from "../helpers/server.js";

const run = promisify(execFile);
const server = serverForSuite();

/** `buf curl` with the schema read from proto/, over the gRPC protocol (h2c). */
async function bufCurl(method: string, body: object, extra: string[] = []) {
  const args = ["curl", "--schema", "proto", "--protocol", "grpc", "--http2-prior-knowledge", "-H", "authorization: Bearer grpc-user", "-d", JSON.stringify(body), ...extra, `${server.url}/chorus.v1.RealtimeService/${method}`];
  return run(`${ROOT}/node_modules/.bin/buf`, args, { cwd: ROOT, timeout: 20_000 });
}

it("a stock gRPC client publishes and reads history from the .proto files alone", async () => {
  const published = [];
  for (const text of ["first", "second"]) {
    const { stdout } = await bufCurl("Publish", { topic: "chat/buf", event: "message", data: JSON.stringify({ text }), persist: true });
    published.push(JSON.parse(stdout));
  }
  expect(published[1].position.seq).toBe("2");

  const { stdout } = await bufCurl("GetHistory", { topic: "chat/buf", limit: 10 });
  const history = JSON.parse(stdout);
  expect(history.messages.map((m: { data: string }) => JSON.parse(m.data).text)).toEqual(["second", "first"]);
  expect(history.messages[0]).toMatchObject({ id: published[1].id, roomId: "chat/buf", userId: "grpc-user", event: "message", seq: "2" });
  expect(history.position).toEqual(published[1].position);
});

it("gets gRPC status codes for bad input", async () => {
  const error = await bufCurl("Publish", { topic: "chat/buf", event: "", data: "1" }).catch((e: { stderr: string }) => e);
  expect(String((error as { stderr: string }).stderr)).toMatch(/invalid_argument[\s\S]*event is empty/);
});

it("speaks the bidirectional session with buf curl over gRPC, gRPC-Web and Connect", async () => {
  for (const protocol of ["grpc", "grpcweb", "connect"]) {
    const args = ["curl", "--schema", "proto", "--protocol", protocol, "--http2-prior-knowledge", "-H", "authorization: Bearer curl-user", "-d", "@-", `${server.url}/chorus.v1.RealtimeService/Connect`];
    const child = execFile(`${ROOT}/node_modules/.bin/buf`, args, { cwd: ROOT, timeout: 20_000 });
    // Two frames, then stdin closes: the session ends after answering both, the persisted publish once it
    // is stored (which comes after the end of the request has been read).
    child.stdin!.end(JSON.stringify({ requestId: "1", subscribe: { topic: "chat/curl" } }) + "\n" + JSON.stringify({ requestId: "2", publish: { topic: "chat/curl", event: "m", persist: true, data: '{"via":"' + protocol + '"}' } }) + "\n");
    let stdout = "";
    child.stdout!.on("data", (d) => (stdout += d));
    const code = await new Promise((r) => child.on("exit", r));
    expect(code, `${protocol}: ${stdout}`).toBe(0);
    const frames = stdout
      .trim()
      .split(/\n(?=\{)/)
      .flatMap((doc) => JSON.parse(doc).frames as Array<Record<string, { requestId?: string; userId?: string; data?: string }>>);
    expect(frames[0]!.welcome!.userId, protocol).toBe("curl-user");
    expect(frames.filter((f) => f.reply).map((f) => f.reply!.requestId)).toEqual(["1", "2"]);
    expect(frames.find((f) => f.payload)!.payload!.data).toBe(`{"via":"${protocol}"}`);
  }
});

it("needs no .proto files at all: server reflection (v1 and v1alpha) lists the services and lets a tool call them", async () => {
  const buf = (args: string[]) => run(`${ROOT}/node_modules/.bin/buf`, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], { cwd: ROOT, timeout: 20_000 });
  for (const reflect of ["grpc-v1", "grpc-v1alpha"]) {
    const { stdout } = await buf(["--list-methods", "--reflect-protocol", reflect, server.url]);
    const methods = stdout.trim().split("\n");
    expect(methods).toEqual(expect.arrayContaining(["chorus.v1.RealtimeService/Publish", "chorus.v1.RealtimeService/Connect", "chorus.v1.ServerService/Emit", "grpc.reflection.v1.ServerReflection/ServerReflectionInfo"]));
  }
  const published = JSON.parse(
    (await buf(["-H", "authorization: Bearer reflecting-user", "-d", JSON.stringify({ topic: "chat/reflected", event: "m", data: '"found by reflection"', persist: true }), `${server.url}/chorus.v1.RealtimeService/Publish`])).stdout,
  );
  expect(published.position.seq).toBe("1");
  const history = JSON.parse((await buf(["-d", JSON.stringify({ topic: "chat/reflected", limit: 5 }), `${server.url}/chorus.v1.RealtimeService/GetHistory`])).stdout);
  expect(history.messages.map((m: { data: string }) => m.data)).toEqual(['"found by reflection"']);
  // An unknown symbol is an answer (NOT_FOUND inside the stream), not a broken stream.
  const missing = await buf(["-d", "{}", `${server.url}/acme.v1.Nothing/Here`]).catch((e: { stderr: string }) => e);
  expect(missing.stderr).toMatch(/acme\.v1\.Nothing/);
});
