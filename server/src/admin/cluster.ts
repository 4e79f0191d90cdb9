import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../log.js";

/** How long a question to the other nodes waits for their answers. */
const ANSWER_WAIT_MS = 500;

/** What one node answers for the admin API, about its own sessions. */
export type AdminHandler = (kind: string, body: unknown) => unknown;

/**
 * The admin API's questions to every node (list connections, disconnect a
 * user): on one node there is nobody else to ask; on NATS each node
 * answers on `<prefix>.adm.<kind>` for its own sessions, and the asker
 * gathers the answers of the nodes it knows to be alive (or what arrives
 * within half a second, while it does not yet know them all).
 */
export interface ClusterAdmin {
  start(handler: AdminHandler): Promise<void>;
  /** The other nodes' answers. */
  askOthers(kind: string, body: unknown): Promise<unknown[]>;
}

export class LocalAdmin implements ClusterAdmin {
  async start(): Promise<void> {}
  async askOthers(): Promise<unknown[]> {
    return [];
  }
}

export class NatsAdmin implements ClusterAdmin {
  constructor(
    private readonly connection: () => NatsConnection | undefined,
    private readonly prefix: () => string,
    private readonly node: string,
    /** Other nodes known to be alive, and whether that count can be trusted yet. */
    private readonly others: () => { count: number; settled: boolean },
    private readonly log: Logger,
  ) {}

  async start(handler: AdminHandler): Promise<void> {
    const nc = this.nc();
    nc.subscribe(`${this.prefix()}.adm.>`, {
      callback: (error, msg) => {
        if (error || !msg.reply) return;
        let request: { from?: string; body?: unknown } | undefined;
        try {
          request = JSON.parse(new TextDecoder().decode(msg.data)) as { from?: string; body?: unknown };
        } catch {
          return;
        }
        if (!request || request.from === this.node) return;
        const kind = msg.subject.slice(`${this.prefix()}.adm.`.length);
        try {
          msg.respond(JSON.stringify({ node: this.node, answer: handler(kind, request.body) }));
        } catch (failure) {
          this.log.warn(`admin: could not answer "${kind}" (${(failure as Error).message})`);
        }
      },
    });
    await nc.flush();
  }

  async askOthers(kind: string, body: unknown): Promise<unknown[]> {
    const { count, settled } = this.others();
    if (settled && count === 0) return [];
    const nc = this.nc();
    const replies = await nc.requestMany(`${this.prefix()}.adm.${kind}`, JSON.stringify({ from: this.node, body }), settled ? { strategy: "count", maxMessages: count, maxWait: ANSWER_WAIT_MS } : { strategy: "timer", maxWait: ANSWER_WAIT_MS });
    const answers: unknown[] = [];
    for await (const reply of replies) {
      try {
        const parsed = JSON.parse(new TextDecoder().decode(reply.data)) as { node?: string; answer?: unknown };
        if (parsed.node && parsed.node !== this.node) answers.push(parsed.answer);
      } catch {
        // Not an answer of ours.
      }
    }
    return answers;
  }

  private nc(): NatsConnection {
    const nc = this.connection();
    if (!nc) throw new Error("admin: NATS is not connected");
    return nc;
  }
}
