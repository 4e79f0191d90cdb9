/**
 * A token bucket: `rate` tokens per second, holding at most `burst`
 * (`rate` unless given). Refilled lazily on use, so an idle holder costs
 * nothing.
 */
export class RateLimit {
  private tokens: number;
  private updatedAt = performance.now();
  private refused: Error | undefined;

  constructor(
    private readonly rate: number,
    private readonly burst = rate,
  ) {
    this.tokens = burst;
  }

  /** Takes one token; false when none is left. A rate of 0 never limits. */
  take(): boolean {
    if (this.rate === 0) return true;
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updatedAt) / 1000) * this.rate);
    this.updatedAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /**
   * The error a refusal throws, made once per holder: a client flooding
   * past its rate is refused thousands of times a second, and an error
   * object (its stack, its metadata) costs more than the rest of a refusal.
   */
  refusal<E extends Error>(make: () => E): E {
    return (this.refused ??= make()) as E;
  }

  /** True when the bucket is full again: its holder may be forgotten. */
  get full(): boolean {
    const now = performance.now();
    return this.tokens + ((now - this.updatedAt) / 1000) * this.rate >= this.burst;
  }
}
