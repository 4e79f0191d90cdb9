// The `chorus` command, each subcommand against a real server: help,
// version, tokens minted and checked, publish, subscribe (Ctrl-C ends it
// cleanly), history, presence, emit and send-to.
import { execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { NodeClient } from "../helpers/clients.js";
import { eventually, ROOT, serverForSuite } from "../helpers/server.js";

const SECRET = "cli-test-secret-long-enough-for-hs256";
const API_KEY = "cli-test-key";
const BIN = join(ROOT, "server/bin/chorus.mjs");

function chorus(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 20_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}
const lines = (text: string) => text.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));

describe("the chorus command", () => {
  const server = serverForSuite({
    CHORUS_JWT_SECRET: SECRET,
    CHORUS_API_KEYS: API_KEY,
    CHORUS_PERMISSIONS: JSON.stringify({ subscribe: ["chat/*"], publish: ["chat/*"], history: ["chat/*"], presence: ["chat/*"] }),
  });
  const env = () => ({ CHORUS_URL: server.url, CHORUS_JWT_SECRET: SECRET });

  it("--help lists every command, each has its own help, version says which, an unknown command is refused", async () => {
    const help = await chorus(["--help"]);
    expect(help.code).toBe(0);
    for (const command of ["serve", "version", "config", "token", "publish", "subscribe", "history", "presence", "emit", "send-to"]) expect(help.stdout).toContain(command);
    const publishHelp = await chorus(["publish", "--help"]);
    expect(publishHelp.stdout).toMatch(/Usage: chorus publish \[options\] <topic> <event> \[json\]/);
    expect(publishHelp.stdout).toContain("--persist");
    expect(lines((await chorus(["version"])).stdout)[0]).toMatchObject({ chorus: "0.1.0" });
    expect((await chorus(["--version"])).stdout.trim()).toBe("0.1.0");
    const unknown = await chorus(["nonsense"]);
    expect([unknown.code, unknown.stderr]).toEqual([1, expect.stringContaining("unknown command 'nonsense'")]);
  });

  it("config prints every setting with its default, the value here and its meaning; config check says what is wrong", async () => {
    const { stdout } = await chorus(["config"], { CHORUS_MAX_CONNECTIONS: "7", CHORUS_JWT_SECRET: "a-secret-never-printed-0123456789" });
    expect(stdout).toMatch(/CHORUS_MAX_CONNECTIONS\n\s+default: 10000\n\s+current: 7\n/);
    expect(stdout).toContain("CHORUS_JWT_SECRET");
    expect(stdout).not.toContain("a-secret-never-printed");
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(CHORUS|NATS)_/.test(k)));
    const check = (env: Record<string, string>) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(process.execPath, [BIN, "config", "check"], { env: { ...clean, ...env } }, (error, out, err) => resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout: out, stderr: err })),
      );
    expect(await check({ CHORUS_MAX_CONNECTIONS: "7" })).toMatchObject({ code: 0, stdout: "chorus: the configuration is valid\n" });
    expect(await check({ CHORUS_MAX_CONECTIONS: "7" })).toMatchObject({ code: 1, stderr: expect.stringContaining("did you mean CHORUS_MAX_CONNECTIONS?") });
    expect(await check({ CHORUS_MAX_CONNECTIONS: "lots" })).toMatchObject({ code: 2, stderr: expect.stringContaining("CHORUS_MAX_CONNECTIONS=lots") });
  });

  it("mints a token that the server takes, and explains one it would refuse", async () => {
    const minted = await chorus(["token", "--sub", "ada", "--ttl", "1h", "--grant", "subscribe=notes/*", "--grant", "publish=notes/*"], env());
    expect(minted.code).toBe(0);
    const token = minted.stdout.trim();
    const check = lines((await chorus(["token", "check", token], env())).stdout)[0];
    expect(check).toMatchObject({ ok: true, user: "ada", grants: { subscribe: ["notes/*"], publish: ["notes/*"] } });
    // The server agrees: the token's grant lets ada publish where the configuration alone would not.
    const ada = new NodeClient({ url: server.url, token, reconnect: false });
    await ada.channel("notes/x").publish("m", 1);
    ada.disconnect();
    const wrong = await chorus(["token", "check", token], { ...env(), CHORUS_JWT_SECRET: "another-secret-long-enough-for-hs256" });
    expect(wrong.code).toBe(1);
    expect(lines(wrong.stdout)[0]).toMatchObject({ ok: false, reason: "token signature is not valid", claims: { sub: "ada" } });
    expect((await chorus(["token", "--ttl", "soon"], env())).stderr).toContain("--ttl soon");
  });

  it("publishes, tails, reads history and presence as a user; emits and sends to a user with an API key", async () => {
    const token = (await chorus(["token", "--sub", "cli-user"], env())).stdout.trim();
    const asUser = { ...env(), CHORUS_TOKEN: token };

    // subscribe: a JSON line per payload, until Ctrl-C.
    const tail = spawn(process.execPath, [BIN, "subscribe", "chat/cli"], { env: { ...process.env, ...asUser } });
    let tailed = "";
    let told = "";
    tail.stdout.on("data", (d: Buffer) => (tailed += d.toString()));
    tail.stderr.on("data", (d: Buffer) => (told += d.toString()));
    await eventually(() => told.includes("subscribed to chat/cli"), "the tail to subscribe", 15_000);
    const watcher = new NodeClient({ url: server.url, token });
    await watcher.channel("chat/cli").subscribe().ready();

    const published = await chorus(["publish", "chat/cli", "message", '{"text":"from the command line"}', "--persist"], asUser);
    expect(published.code).toBe(0);
    expect(lines(published.stdout)[0]).toMatchObject({ position: { seq: 1 } });
    const emitted = await chorus(["emit", "chat/cli", "notice", '"from a back end"', "--persist", "--api-key", API_KEY], env());
    expect(lines(emitted.stdout)[0]).toMatchObject({ position: { seq: 2 } });
    await eventually(() => tailed.split("\n").filter(Boolean).length >= 2, "both tailed", 10_000);
    expect(lines(tailed).map((p) => [p.event, p.data])).toEqual([
      ["message", { text: "from the command line" }],
      ["notice", "from a back end"],
    ]);
    tail.kill("SIGINT");
    expect(await new Promise((resolve) => tail.once("exit", (code) => resolve(code)))).toBe(0);

    const history = await chorus(["history", "chat/cli", "--limit", "10"], asUser);
    expect(lines(history.stdout).map((m) => m.data)).toEqual([{ text: "from the command line" }, "from a back end"]);

    await watcher.channel("chat/cli").track({ name: "Watcher" });
    const presence = await chorus(["presence", "chat/cli"], asUser);
    expect(lines(presence.stdout)).toEqual([expect.objectContaining({ userId: "cli-user", data: expect.objectContaining({ name: "Watcher" }) })]);

    const direct: unknown[] = [];
    watcher.on("ping", ({ data }) => direct.push(data));
    const sent = await chorus(["send-to", "cli-user", "ping", '{"n":1}', "--api-key", API_KEY], env());
    expect(sent.code).toBe(0);
    await eventually(() => direct.length === 1, "the message to the user");
    expect(direct).toEqual([{ n: 1 }]);

    // Refusals say why, with the code, and exit 1.
    const refused = await chorus(["publish", "secret/x", "m", "1"], asUser);
    expect([refused.code, refused.stderr]).toEqual([1, expect.stringMatching(/PermissionDenied/)]);
    const noKey = await chorus(["emit", "chat/cli", "m", "1"], env());
    expect([noKey.code, noKey.stderr]).toEqual([1, expect.stringMatching(/Unauthenticated/)]);
    const notJson = await chorus(["publish", "chat/cli", "m", "not json"], asUser);
    expect([notJson.code, notJson.stderr]).toEqual([1, expect.stringContaining("not JSON")]);
    watcher.disconnect();
  });
});
