import { execFile } from "node:child_process";
import { expect, it } from "vitest";
import { ROOT, serverForSuite } from "../helpers/server.js";

const server = serverForSuite();

it("disconnect() leaves no timer or socket behind: a Node script exits by itself", async () => {
  const script = `
    import { RealtimeClient } from "./clients/src/node.ts";
    import { RealtimeClient as BrowserClient } from "./clients/src/browser.ts";
    import { createServerSdk } from "./clients/src/server-sdk.ts";
    for (const Client of [RealtimeClient, BrowserClient]) {
      const c = new Client({ url: ${JSON.stringify(server.url)}, token: "leaver", getToken: async () => "leaver" });
      c.channel("chat/exit").on("m", () => {}).subscribe();
      await c.channel("chat/exit").ready();
      await c.channel("chat/exit").publish("m", 1, { persist: true });
      await c.channel("chat/exit").getHistory(1);
      c.disconnect();
    }
    const sdk = createServerSdk({ url: ${JSON.stringify(server.url)} });
    await sdk.socket.emit("m", 1, "chat/exit");
    sdk.close();
    console.log("done");
  `;
  const started = Date.now();
  const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) =>
    execFile(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: ROOT, timeout: 15_000 }, (error, stdout) =>
      error ? reject(error) : resolve({ stdout }),
    ),
  );
  expect(stdout.trim()).toBe("done");
  expect(Date.now() - started).toBeLessThan(10_000); // not held open by a 30 s heartbeat or an idle connection
});
