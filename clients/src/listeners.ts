import type { Listener, RealtimePayload } from "./types.js";

/**
 * Listeners by event name, where `'*'` hears every event. Each event's
 * listeners are an array replaced on every change, never changed in place:
 * a dispatch walks the array it found with nothing copied (listeners added
 * or removed meanwhile take effect from the next payload), and adding or
 * removing, rare beside payloads, pays for the copy.
 */
export class Listeners {
  private readonly byEvent = new Map<string, readonly Listener[]>();

  /** `failed` hears a listener's throw: one listener's bug never stops the others, nor the stream. */
  constructor(private readonly failed: (error: unknown, event: string) => void) {}

  /** Adds `listener` for `event` (once: adding it again changes nothing, as with a Set). */
  add(event: string, listener: Listener): void {
    const list = this.byEvent.get(event) ?? [];
    if (!list.includes(listener)) this.byEvent.set(event, [...list, listener]);
  }

  /** Whether anyone listens to `event` by name. */
  has(event: string): boolean {
    return (this.byEvent.get(event)?.length ?? 0) > 0;
  }

  remove(event: string, listener: Listener): void {
    const list = this.byEvent.get(event);
    if (!list?.includes(listener)) return;
    const rest = list.filter((l) => l !== listener);
    if (rest.length > 0) this.byEvent.set(event, rest);
    else this.byEvent.delete(event);
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
    const list = this.byEvent.get(event);
    if (!list) return;
    for (let i = 0; i < list.length; i++) {
      try {
        list[i]!(payload);
      } catch (error) {
        this.failed(error, event);
      }
    }
  }
}
