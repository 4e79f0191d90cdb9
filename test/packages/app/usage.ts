// Type-checked by `tsc --noEmit` against the installed packages' declarations.
import { ChorusError, RealtimeClient, SubscriptionRefusedError, type ChannelState, type ConnectionStatus, type HistoryMessage, type RealtimePayload, type TableEvents } from "@chorus/client";
import { createServerSdk, type ServerSdk } from "@chorus/client/server";

interface ChatMessage {
  text: string;
}

export async function chat(url: string): Promise<string[]> {
  const realtime = new RealtimeClient({ url, token: "ada" });
  const status: ConnectionStatus = realtime.status;
  const channel = realtime.channel("chat/general");
  channel.on<ChatMessage>("message", (payload: RealtimePayload<ChatMessage>) => console.log(status, payload.data.text)).subscribe();
  await channel.publish("message", { text: "hi" }, { persist: true });
  const history: HistoryMessage<ChatMessage>[] = await channel.getHistory(50);
  realtime.disconnect();
  return history.map((m) => m.data.text);
}

export async function backEnd(url: string): Promise<number | undefined> {
  const sdk: ServerSdk = createServerSdk({ url });
  const result = await sdk.socket.emit("chat:message", { text: "from the back end" }, "chat/general", { persist: true });
  sdk.close();
  return result.position?.seq;
}

interface ChatEvents {
  message: ChatMessage;
  typing: { userId: string };
}

interface Order {
  id: number;
  status: string;
  total: number;
}

export async function typed(realtime: RealtimeClient): Promise<ChannelState> {
  const chat = realtime.channel<ChatEvents>("chat/typed");
  chat.on("message", ({ data }) => data.text.toUpperCase()).on("typing", ({ data }) => data.userId.length);
  await chat.publish("message", { text: "typed" });
  // @ts-expect-error a message carries { text }, not a number
  await chat.publish("message", 42);
  // @ts-expect-error typing carries a userId
  chat.on("typing", ({ data }) => data.text);
  realtime.channel<TableEvents<Order>>("orders").on("UPDATE", ({ data, old }) => `${data.status} ${old?.total.toFixed(2)}`);
  try {
    await chat.subscribe().ready();
  } catch (error) {
    if (error instanceof SubscriptionRefusedError) return error.topic === "chat/typed" ? "errored" : "closed";
    if (error instanceof ChorusError) throw error;
  }
  for await (const status of realtime.statuses()) if (status === "connected") break;
  return chat.state;
}
