/** Timers must not keep a Node process alive on their own; browsers have no unref. (No timer: nothing to do.) */
export function unref(timer: unknown): void {
  (timer as { unref?: () => void } | undefined)?.unref?.();
}

/** The longest delay a timer takes (2^31 - 1 ms, about 24.8 days): past it, runtimes fire at once. */
export const MAX_TIMER_DELAY = 2_147_483_647;

/** A delay until `at` (a Date.now() time) that a timer takes: never negative, never past MAX_TIMER_DELAY (the timer fires early, and is set again). */
export function delayUntil(at: number): number {
  return Math.min(MAX_TIMER_DELAY, Math.max(0, at - Date.now()));
}
