import type { Listener, RealtimePayload } from "./types.js";

/** Listeners by event name, where `'*'` hears every event. */
export class Listeners {
  private readonly byEvent = new Map<string, Set<Listener>>();

  /** `failed` hears a listener's throw: one listener's bug never stops the others, nor the stream. */
  constructor(private readonly failed: (error: unknown, event: string) => void) {}

  add(event: string, listener: Listener): void {
    let set = this.byEvent.get(event);
    if (!set) this.byEvent.set(event, (set = new Set()));
    set.add(listener);
  }

  /** Whether anyone listens to `event` by name. */
  has(event: string): boolean {
    return (this.byEvent.get(event)?.size ?? 0) > 0;
  }

  remove(event: string, listener: Listener): void {
    this.byEvent.get(event)?.delete(listener);
  }

  clear(): void {
    this.byEvent.clear();
  }

  /** Calls the payload's event listeners, then the `'*'` ones. */
  dispatch(payload: RealtimePayload): void {
    this.call(payload.event, payload);
    this.call("*", payload);
  }

  private call(event: string, payload: RealtimePayload): void {
    const set = this.byEvent.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(payload);
      } catch (error) {
        this.failed(error, event);
      }
    }
  }
}
