import { createContextKey, createContextValues, type ContextValues } from "@connectrpc/connect";

/**
 * How a handler behind connect's universal path cuts its stream off (a
 * client that does not read what it is sent): set by the HTTP layer, read
 * by the session stream's writer.
 */
export const abortStream = createContextKey<(() => void) | undefined>(undefined, { description: "cuts the HTTP stream off" });

export function withAbort(abort: () => void): ContextValues {
  return createContextValues().set(abortStream, abort);
}
