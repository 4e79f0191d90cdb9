/**
 * A token bucket: `rate` per second, bursts up to `rate`. Refilled lazily
 * on use, so an idle connection costs nothing.
 */
export class RateLimit {
  private tokens: number;
  private updatedAt = Date.now();

  constructor(private readonly rate: number) {
    this.tokens = rate;
  }

  /** Takes one token; false when none is left. A rate of 0 never limits. */
  take(): boolean {
    if (this.rate === 0) return true;
    const now = Date.now();
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.updatedAt) / 1000) * this.rate);
    this.updatedAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
