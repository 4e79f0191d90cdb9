import { Command, InvalidArgumentError } from "commander";
import { Code, ConnectError } from "@connectrpc/connect";
import { RealtimeClient } from "../../../clients/src/node.js";
import { createServerSdk } from "../../../clients/src/server-sdk.js";
import { configFromEnv, unknownVariables } from "../config.js";
import { settingsReport } from "../settings.js";
import { checkToken, mintToken } from "./token.js";
import { dropSlot } from "./drop-slot.js";

declare const __CHORUS_VERSION__: string | undefined;
const VERSION = typeof __CHORUS_VERSION__ === "string" ? __CHORUS_VERSION__ : "development";

/** Options every command that talks to a server takes (flags, else the environment). */
interface Target {
  url: string;
  token?: string;
  apiKey?: string;
}

const json = (text: string | undefined): unknown => {
  if (text === undefined) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new InvalidArgumentError(`not JSON: ${text} (a string is written with quotes: '"hello"')`);
  }
};
const positive = (text: string): number => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("a whole number from 1");
  return n;
};
const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

function withTarget(command: Command, apiKey = false): Command {
  command
    .option("--url <url>", "the Chorus server (CHORUS_URL)", process.env.CHORUS_URL ?? `http://localhost:${process.env.PORT ?? 8080}`)
    .option("--token <jwt>", "a user token (CHORUS_TOKEN)", process.env.CHORUS_TOKEN);
  if (apiKey) command.option("--api-key <key>", "an API key from the server's CHORUS_API_KEYS (CHORUS_API_KEY)", process.env.CHORUS_API_KEY);
  return command;
}

/** A client for one command: no reconnecting (a command either works now or says why). */
function client(target: Target, reconnect = false): RealtimeClient {
  return new RealtimeClient({ url: target.url, ...(target.token ? { token: target.token } : {}), reconnect, onError: () => {} });
}

export function program(): Command {
  const chorus = new Command("chorus")
    .description("Chorus: a self-hosted realtime server. Without a command, runs it (chorus serve).")
    .version(VERSION, "-v, --version", "the version")
    .showHelpAfterError("(chorus --help lists the commands)")
    .enablePositionalOptions();

  chorus
    .command("serve")
    .description("run the server, configured by the environment (see chorus's README: PORT, CHORUS_*)")
    .action(async () => {
      await import("../main.js");
    });

  chorus
    .command("version")
    .description("print the version")
    .action(() => {
      print({ chorus: VERSION, node: process.version });
    });

  const config = chorus
    .command("config")
    .description("print every setting: its variable, default, value here and meaning")
    .action(() => {
      process.stdout.write(settingsReport(process.env));
    });
  config
    .command("check")
    .description("check the environment as the server would read it: exit 0 when it would start as configured")
    .action(() => {
      let problem: string | undefined;
      try {
        configFromEnv();
      } catch (error) {
        problem = (error as Error).message;
      }
      const unknown = unknownVariables();
      for (const { name, suggestion } of unknown) process.stderr.write(`chorus: ${name} is not a Chorus setting and would be ignored${suggestion ? `; did you mean ${suggestion}?` : ""}\n`);
      if (problem) process.stderr.write(`chorus: ${problem}\n`);
      if (problem || unknown.length > 0) process.exitCode = problem ? 2 : 1;
      else process.stdout.write("chorus: the configuration is valid\n");
    });

  const token = chorus.command("token").description("mint a development token with the configured CHORUS_JWT_SECRET, or check one");
  token
    .option("--sub <user>", "the user id (the token's sub)", "dev")
    .option("--ttl <duration>", "how long it lasts: 90s, 15m, 1h, 7d", "1h")
    .option("--grant <action=pattern>", "a permission the token carries, e.g. subscribe=chat/* (repeat it)", (value: string, all: string[]) => [...all, value], [] as string[])
    .action(async (options: { sub: string; ttl: string; grant: string[] }) => {
      process.stdout.write(`${await mintToken(configFromEnv(), options)}\n`);
    });
  token
    .command("check <jwt>")
    .description("say what a token grants on this configuration, or why it would be refused")
    .action(async (jwt: string) => {
      const result = await checkToken(configFromEnv(), jwt);
      print(result);
      if (!result.ok) process.exitCode = 1;
    });

  chorus
    .command("db")
    .description("the tracked PostgreSQL (DATABASE_URL)")
    .command("drop-slot")
    .description("drop the replication slot and publication Chorus made (CHORUS_DB_SLOT), when Chorus stops tracking the database")
    .action(async () => {
      print(await dropSlot(configFromEnv()));
    });

  withTarget(chorus.command("publish <topic> <event> [json]"))
    .description("publish an event (data: JSON) as a user")
    .option("--persist", "keep it in the topic's history")
    .action(async (topic: string, event: string, data: string | undefined, options: Target & { persist?: boolean }) => {
      const c = client(options);
      try {
        const result = await c.channel(topic).publish(event, json(data), { persist: options.persist === true });
        print(result);
      } finally {
        c.disconnect();
      }
    });

  withTarget(chorus.command("subscribe <topics...>"))
    .description("print every payload of the topics, one JSON line each, until Ctrl-C (reconnects and recovers by itself)")
    .action(async (topics: string[], options: Target) => {
      const c = client(options, true);
      // Payloads on stdout (one JSON line each); what happens to the subscriptions on stderr.
      for (const topic of topics) {
        c.channel(topic)
          .on("*", (payload) => print(payload))
          .subscribe((status, error) => {
            if (status === "SUBSCRIBED") process.stderr.write(`chorus: subscribed to ${topic}\n`);
            else if (error && status === "CHANNEL_ERROR") process.stderr.write(`chorus: ${topic}: ${error.rawMessage} (${Code[error.code]})\n`);
          });
      }
      c.onStatusChange((status, error) => {
        if (status === "disconnected" && error) {
          process.stderr.write(`chorus: ${error.rawMessage} (${Code[error.code]})\n`);
          process.exit(1);
        }
      });
      await new Promise<void>((resolve) => {
        const stop = () => {
          c.disconnect();
          resolve();
        };
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
    });

  withTarget(chorus.command("history <topic>"))
    .description("print the topic's last messages, oldest first, one JSON line each")
    .option("--limit <n>", "how many (at most 1000)", positive, 50)
    .action(async (topic: string, options: Target & { limit: number }) => {
      const c = client(options);
      try {
        for (const message of (await c.channel(topic).getHistory(options.limit)).reverse()) print(message);
      } finally {
        c.disconnect();
      }
    });

  withTarget(chorus.command("presence <topic>"))
    .description("print who is present on the topic, one JSON line per connection")
    .action(async (topic: string, options: Target) => {
      const c = client(options);
      try {
        for (const member of await c.channel(topic).getPresence()) print(member);
      } finally {
        c.disconnect();
      }
    });

  withTarget(chorus.command("emit <topic> <event> [json]"), true)
    .description("emit an event as a back end (with an API key)")
    .option("--persist", "keep it in the topic's history")
    .action(async (topic: string, event: string, data: string | undefined, options: Target & { persist?: boolean }) => {
      const sdk = createServerSdk({ url: options.url, ...(options.apiKey ? { apiKey: options.apiKey } : {}), onError: () => {} });
      try {
        print(await sdk.socket.emit(event, json(data), topic, { persist: options.persist === true }));
      } finally {
        sdk.close();
      }
    });

  withTarget(chorus.command("send-to <user> <event> [json]"), true)
    .description("send an event to every connection of one user (with an API key)")
    .action(async (user: string, event: string, data: string | undefined, options: Target) => {
      const sdk = createServerSdk({ url: options.url, ...(options.apiKey ? { apiKey: options.apiKey } : {}), onError: () => {} });
      try {
        print(await sdk.sendTo(user, event, json(data)));
      } finally {
        sdk.close();
      }
    });

  return chorus;
}

/** Runs the command line; a failed call says why (its message and code) and exits 1. */
export async function run(argv: string[]): Promise<void> {
  try {
    // `chorus` alone serves (what `npm start` runs).
    await program().parseAsync(argv.length > 2 ? argv : [...argv, "serve"]);
  } catch (error) {
    const e = error instanceof ConnectError ? error : undefined;
    process.stderr.write(`chorus: ${e ? `${e.rawMessage} (${Code[e.code]})` : (error as Error).message}\n`);
    process.exitCode = 1;
  }
}
