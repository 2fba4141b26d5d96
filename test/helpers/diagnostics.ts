/** Records what the pool publishes on one diagnostics channel, until `stop()`. */
import diagnostics from 'node:diagnostics_channel';

export interface ChannelRecording {
  readonly events: Record<string, unknown>[];
  stop(): void;
}

export function recordChannel(name: string): ChannelRecording {
  const events: Record<string, unknown>[] = [];
  const listener = (message: unknown): void => {
    events.push(message as Record<string, unknown>);
  };
  diagnostics.subscribe(name, listener);
  return { events, stop: () => diagnostics.unsubscribe(name, listener) };
}
