/** Latency histogram: 50 µs buckets up to 2 s, plus the exact maximum. Mergeable across processes. */
export const BUCKET_MS = 0.05;
const BUCKETS = 40_000;

export class Histogram {
  readonly counts = new Uint32Array(BUCKETS + 1);
  max = 0;
  total = 0;

  record(ms: number): void {
    const v = ms < 0 ? 0 : ms;
    this.counts[Math.min(BUCKETS, Math.floor(v / BUCKET_MS))]!++;
    if (v > this.max) this.max = v;
    this.total++;
  }

  toJSON(): { counts: number[]; max: number; total: number } {
    // Sparse: [index, count] pairs keep IPC messages small.
    const counts: number[] = [];
    this.counts.forEach((c, i) => {
      if (c) counts.push(i, c);
    });
    return { counts, max: this.max, total: this.total };
  }

  merge(other: { counts: number[]; max: number; total: number }): void {
    for (let k = 0; k < other.counts.length; k += 2) this.counts[other.counts[k]!]! += other.counts[k + 1]!;
    this.max = Math.max(this.max, other.max);
    this.total += other.total;
  }

  percentile(p: number): number {
    if (this.total === 0) return NaN;
    const want = Math.ceil((p / 100) * this.total);
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= want) return Math.min((i + 1) * BUCKET_MS, this.max);
    }
    return this.max;
  }
}
