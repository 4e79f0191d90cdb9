import { Code, ConnectError } from "@connectrpc/connect";

export interface JoinDecision {
  /** JSON text for SubscribeResponse.join_data ("" when none). */
  data: string;
}

/**
 * Asks the app's back end whether a user may join a topic:
 * `POST <url>` with `{"user_id","topic","connection_id"}`, answered by
 * `{"allow": true|false, "data"?: any, "reason"?: string}`. Fails closed: a
 * slow, failing or unreadable hook refuses the join with UNAVAILABLE.
 */
export async function askJoinHook(url: string, timeoutMs: number, request: { userId: string; topic: string; connectionId: string }): Promise<JoinDecision> {
  let answer: { allow?: unknown; data?: unknown; reason?: unknown };
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user_id: request.userId, topic: request.topic, connection_id: request.connectionId }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!response.ok) throw new Error(`it answered HTTP ${response.status}`);
    answer = (await response.json()) as typeof answer;
  } catch (error) {
    const why = (error as Error).name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : (error as Error).message;
    throw new ConnectError(`join hook failed (${why}); try again later`, Code.Unavailable);
  }
  if (answer?.allow !== true) {
    const reason = typeof answer?.reason === "string" && answer.reason ? answer.reason : "the app's join hook refused it";
    throw new ConnectError(`may not join "${request.topic}": ${reason}`, Code.PermissionDenied);
  }
  return { data: answer.data === undefined ? "" : JSON.stringify(answer.data) };
}
