// Type-checked by `tsc --noEmit` against the installed packages' declarations.
import { RealtimeClient, type ConnectionStatus, type HistoryMessage, type RealtimePayload } from "@chorus/client";
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
