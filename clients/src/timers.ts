/** Timers must not keep a Node process alive on their own; browsers have no unref. */
export function unref(timer: unknown): void {
  (timer as { unref?: () => void }).unref?.();
}
