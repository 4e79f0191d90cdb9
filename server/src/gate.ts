import { Code, ConnectError } from "@connectrpc/connect";

/**
 * At most `concurrency` holders at once; up to `queue` more wait their
 * turn in arrival order, and anyone beyond that is refused with
 * RESOURCE_EXHAUSTED. Used where a peer could otherwise start any number
 * of expensive operations at once (history reads).
 */
export class Gate {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly concurrency: number,
    private readonly queue: number,
    private readonly what: string,
  ) {}

  get idle(): boolean {
    return this.active === 0 && this.waiting.length === 0;
  }

  /** Runs `work` when a place is free. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.active >= this.concurrency) {
      if (this.waiting.length >= this.queue) {
        throw new ConnectError(`too many ${this.what} at once (${this.concurrency} running, ${this.queue} waiting); retry shortly`, Code.ResourceExhausted);
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.active++;
    }
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      // The place passes straight to the next in line.
      if (next) next();
      else this.active--;
    }
  }
}
