import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";

/** A free TCP port on loopback, chosen up front (the balancer's configuration names every node's port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/**
 * A child process the cluster keeps: started, stopped with SIGTERM (a
 * Chorus node drains), started again with the same command, its output
 * kept for when something goes wrong.
 */
export class Managed {
  private child: ChildProcess | undefined;
  output = "";

  constructor(
    readonly name: string,
    private readonly command: string,
    private readonly args: string[],
    private readonly env: Record<string, string> = {},
    /** Resolves once the process serves (a port answers, a line is printed). */
    private readonly ready: (m: Managed) => Promise<void>,
  ) {}

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    if (this.running) return;
    const child = spawn(this.command, this.args, { env: { ...process.env, ...this.env }, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    const keep = (d: Buffer) => {
      this.output = (this.output + d.toString()).slice(-64 * 1024);
    };
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    let ready = false;
    const exited = new Promise<never>((_, reject) =>
      child.once("exit", (code) => {
        if (!ready) reject(new Error(`${this.name} exited (${code}) before it was ready:\n${this.output}`));
      }),
    );
    await Promise.race([this.ready(this), exited]);
    ready = true;
  }

  /** SIGTERM, then SIGKILL if it has not gone within `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await gone;
    clearTimeout(timer);
  }
}

/** Resolves once `port` on loopback accepts connections (gives up after `timeoutMs`). */
export async function portOpen(port: number, timeoutMs = 15_000): Promise<void> {
  const { connect } = await import("node:net");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => (socket.destroy(), resolve(true)));
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Resolves once the process has printed text matching `pattern`. */
export async function printed(m: Managed, pattern: RegExp, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(m.output)) {
    if (Date.now() > deadline) throw new Error(`${m.name} did not print ${pattern} within ${timeoutMs} ms:\n${m.output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
