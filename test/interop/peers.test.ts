// Interop with independent HTTP/2 and gRPC implementations that Debian
// ships: curl and nghttp (nghttp2's client), h2load for load, and Python's
// grpcio with stubs generated from proto/. .ci/run installs them; on a
// machine without them these suites skip loudly, and under CI=true a
// missing peer is a failure.
import { execFile, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT, serverForSuite } from "../helpers/server.js";

const PYTHON = "/usr/bin/python3";

function available(command: string, args: string[], what: string): boolean {
  const ok = spawnSync(command, args, { encoding: "utf8" }).status === 0;
  if (ok) return true;
  const message = `\n*** ${what} not installed: interop tests with it ${process.env.CI === "true" ? "FAIL" : "are SKIPPED"} (Debian: nghttp2-client, curl, python3-grpcio, python3-grpc-tools) ***\n`;
  if (process.env.CI === "true") throw new Error(message);
  console.warn(message);
  return false;
}

function run(command: string, args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolvePromise({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) }),
    );
  });
}

const server = serverForSuite({ CHORUS_MAX_PUBLISH_RATE: "0" });
const scratch = mkdtempSync(join(tmpdir(), "chorus-interop-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe.runIf(available("curl", ["--version"], "curl"))("curl --http2-prior-knowledge", () => {
  it("gets /healthz and calls Emit and GetHistory with the Connect protocol", async () => {
    const health = await run("curl", ["-sS", "--http2-prior-knowledge", "-w", "\n%{http_version} %{http_code}", `${server.url}/healthz`]);
    expect(health.stdout).toMatch(/"status":"ok"[\s\S]*\n2 200$/);
    const emit = await run("curl", ["-sS", "--http2-prior-knowledge", "-H", "content-type: application/json", "-d", '{"topic":"chat/curl","event":"m","data":"\\"hi\\"","persist":true}', `${server.url}/chorus.v1.ServerService/Emit`]);
    expect(JSON.parse(emit.stdout).position.seq).toBe("1");
    const history = await run("curl", ["-sS", "--http2-prior-knowledge", "-H", "content-type: application/json", "-d", '{"topic":"chat/curl"}', `${server.url}/chorus.v1.RealtimeService/GetHistory`]);
    expect(JSON.parse(history.stdout).messages[0].data).toBe('"hi"');
  });
});

describe.runIf(available("nghttp", ["--version"], "nghttp"))("nghttp and h2load (nghttp2)", () => {
  it("nghttp gets /healthz and posts a unary call", async () => {
    const get = await run("nghttp", ["-v", `${server.url}/healthz`]);
    expect(get.code).toBe(0);
    expect(get.stdout).toMatch(/:status: 200/);
    writeFileSync(join(scratch, "emit.json"), '{"topic":"chat/nghttp","event":"m","data":"1"}');
    const post = await run("nghttp", ["-v", "-H", "content-type: application/json", "-d", join(scratch, "emit.json"), `${server.url}/chorus.v1.ServerService/Emit`]);
    expect(post.stdout).toMatch(/:status: 200/);
    expect(post.stdout).not.toMatch(/recv (GOAWAY|RST_STREAM)/);
  });

  it("h2load: 20 000 requests over 50 connections, none failed", { timeout: 120_000 }, async () => {
    const load = await run("h2load", ["-n", "20000", "-c", "50", "-m", "10", `${server.url}/healthz`], 110_000);
    const line = /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(load.stdout);
    console.log(`h2load /healthz: ${line?.[0]}; ${/finished in [^\n]*/.exec(load.stdout)?.[0]}`);
    expect(line?.slice(1).map(Number)).toEqual([20000, 20000, 0, 0]);
    writeFileSync(join(scratch, "publish.json"), '{"topic":"chat/h2load","event":"m","data":"1"}');
    const unary = await run("h2load", ["-n", "20000", "-c", "50", "-m", "10", "-H", "content-type: application/json", "-d", join(scratch, "publish.json"), `${server.url}/chorus.v1.ServerService/Emit`], 110_000);
    const unaryLine = /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(unary.stdout);
    console.log(`h2load Emit: ${unaryLine?.[0]}; ${/finished in [^\n]*/.exec(unary.stdout)?.[0]}`);
    expect(unaryLine?.slice(1).map(Number)).toEqual([20000, 20000, 0, 0]);
  });
});

const hasGrpc = available(PYTHON, ["-c", "import grpc, grpc_tools"], "python3-grpcio / python3-grpc-tools");
describe.runIf(hasGrpc)("Python grpcio from proto/", () => {
  it("drives Publish, GetHistory, the bidi session, Listen + Subscribe and a back end's EmitStream, and gets the right codes for bad input", { timeout: 60_000 }, async () => {
    const stubs = join(scratch, "stubs");
    mkdirSync(stubs, { recursive: true });
    const generated = await run(PYTHON, ["-m", "grpc_tools.protoc", `-I${join(ROOT, "proto")}`, `--python_out=${stubs}`, `--grpc_python_out=${stubs}`, "chorus/v1/payload.proto", "chorus/v1/realtime.proto", "chorus/v1/server.proto"]);
    expect(generated.stderr).toBe("");
    const result = await run(PYTHON, [resolve(import.meta.dirname, "grpc_client.py"), `127.0.0.1:${server.port}`, stubs]);
    expect(result.stderr).toBe("");
    const out = JSON.parse(result.stdout);
    console.log(`grpcio: ${result.stdout.trim()}`);
    expect(out.published_seq).toBe(1);
    expect(out.history).toEqual(['{"n":1}']);
    expect(out.bidi.welcome).toBe(true);
    expect(out.bidi.replies).toEqual([1, 2, 3]);
    expect(out.bidi.payloads).toEqual(['"live"']);
    expect(out.listen).toEqual({ session_id: true, received: '"via listen"' });
    expect(out.stream).toEqual({ chunks: 3, status: "STREAM_STATUS_DONE", history: [["stream:end", "Hello, gRPC"]] });
    expect(out.codes).toEqual({
      bad_topic: "INVALID_ARGUMENT",
      limit_too_large: "INVALID_ARGUMENT",
      unknown_session: "NOT_FOUND",
      bad_json: "INVALID_ARGUMENT",
      not_protobuf: "INVALID_ARGUMENT",
      // Answered as gRPC says (Trailers-Only), so grpc-core has nothing to complain of on stderr.
      unknown_method: "UNIMPLEMENTED",
      unknown_service: "UNIMPLEMENTED",
      bad_token: "UNAUTHENTICATED",
    });
  });
});
