export { ChorusProvider, useRealtime, type ChorusProviderProps } from "./context.js";
export {
  useChannel,
  useConnectionStatus,
  useHistory,
  usePresence,
  useStream,
  useTable,
  type ChannelState,
  type EventMap,
  type Handlers,
  type UseChannelResult,
  type UseHistoryResult,
  type UseTableOptions,
} from "./hooks.js";
