import { closeSync, constants, fdatasync, openSync, read, write } from "node:fs";

/**
 * The open files of the embedded engine, as a bounded cache: at most `max`
 * descriptors, the least recently used closed first. A file in use (an I/O
 * in flight) is never closed under it: callers hold a reference across
 * their await. So 100 000 topics work under `ulimit -n 1024`.
 */
export class FilePool {
  private readonly open = new Map<string, { fd: number; refs: number; stale: boolean }>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.open.size;
  }

  /** Runs `work` with the file's descriptor (opened read-write, created if missing). */
  async use<T>(path: string, work: (fd: number) => Promise<T>): Promise<T> {
    const entry = this.acquire(path);
    try {
      return await work(entry.fd);
    } finally {
      this.release(path, entry);
    }
  }

  /** The same, for synchronous work. */
  useSync<T>(path: string, work: (fd: number) => T): T {
    const entry = this.acquire(path);
    try {
      return work(entry.fd);
    } finally {
      this.release(path, entry);
    }
  }

  /** The file at `path` was replaced (renamed over): its descriptor is closed once idle. */
  invalidate(path: string): void {
    const entry = this.open.get(path);
    if (!entry) return;
    this.open.delete(path);
    entry.stale = true;
    if (entry.refs === 0) closeSync(entry.fd);
  }

  closeAll(): void {
    for (const [path, entry] of this.open) {
      this.open.delete(path);
      entry.stale = true;
      if (entry.refs === 0) closeSync(entry.fd);
    }
  }

  private acquire(path: string): { fd: number; refs: number; stale: boolean } {
    let entry = this.open.get(path);
    if (entry) {
      // Most recently used last: Map order is the eviction order.
      this.open.delete(path);
      this.open.set(path, entry);
    } else {
      this.evict();
      entry = { fd: openSync(path, constants.O_RDWR | constants.O_CREAT, 0o644), refs: 0, stale: false };
      this.open.set(path, entry);
    }
    entry.refs++;
    return entry;
  }

  private release(path: string, entry: { fd: number; refs: number; stale: boolean }): void {
    entry.refs--;
    if (entry.refs === 0 && entry.stale) closeSync(entry.fd);
    else if (this.open.size > this.max && this.open.get(path) === entry) this.evict();
  }

  private evict(): void {
    for (const [path, entry] of this.open) {
      if (this.open.size < this.max) return;
      if (entry.refs > 0) continue;
      this.open.delete(path);
      closeSync(entry.fd);
    }
  }
}

export function readAt(fd: number, length: number, position: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  return new Promise((resolve, reject) =>
    read(fd, buffer, 0, length, position, (error, bytes) => (error ? reject(error) : resolve(bytes === length ? buffer : buffer.subarray(0, bytes)))),
  );
}

export function writeAt(fd: number, data: Buffer, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (offset: number) =>
      write(fd, data, offset, data.length - offset, position + offset, (error, written) => {
        if (error) return reject(error);
        if (offset + written < data.length) step(offset + written);
        else resolve();
      });
    step(0);
  });
}

export function syncData(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (error) => (error ? reject(error) : resolve())));
}
