import type { Channel, ChannelOptions, RealtimeClient } from "@chorus/client";

/**
 * Hooks share a topic's Channel (one per client and topic): each mounted
 * hook holds it, and the last one to let go unsubscribes. Letting go is
 * deferred by a turn, so StrictMode's unmount-and-mount (or a component
 * moving in the tree) keeps the subscription instead of leaving and
 * joining again.
 */
const holders = new WeakMap<RealtimeClient, Map<string, { count: number; release?: ReturnType<typeof setTimeout> }>>();

/** `attach` adds the hook's listeners before the subscription is asked for (a presence:sync listener asks for the member list). */
export function hold(realtime: RealtimeClient, topic: string, attach: (channel: Channel) => void, options?: ChannelOptions): { channel: Channel; release(): void } {
  let topics = holders.get(realtime);
  if (!topics) holders.set(realtime, (topics = new Map()));
  let entry = topics.get(topic);
  if (!entry) topics.set(topic, (entry = { count: 0 }));
  clearTimeout(entry.release);
  entry.count++;
  const channel = realtime.channel(topic, options);
  attach(channel);
  channel.subscribe();
  const held = entry;
  let released = false;
  return {
    channel,
    release() {
      if (released) return;
      released = true;
      if (--held.count > 0) return;
      held.release = setTimeout(() => {
        if (held.count > 0) return;
        topics!.delete(topic);
        channel.unsubscribe().catch(() => {}); // the SDK reports a failure through onError
      }, 0);
    },
  };
}
