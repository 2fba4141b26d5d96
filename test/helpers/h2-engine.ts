/**
 * Our HTTP/2 engine started straight on a socket a test dialed (no pool, no connector), with the
 * options the engine tests share: tight deadlines, no PING health checks unless asked.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { systemClock } from '../../src/core/clock.js';
import { type H2EngineOptions, startH2Connection } from '../../src/protocol/h2/engine.js';
import type { H2EngineView } from '../../src/protocol/h2/engine-view.js';

export function startTestEngine(socket: Socket | TLSSocket, keyId: string, overrides: Partial<H2EngineOptions> = {}): Promise<H2EngineView> {
  return startH2Connection(
    socket,
    keyId,
    {
      clock: systemClock,
      maxStreams: 100,
      readTimeoutMs: 10_000,
      pingIntervalMs: 0,
      pingTimeoutMs: 2_000,
      settingsTimeoutMs: 2_000,
      maxHeaderBytes: 16_384,
      maxHeaderCount: 64,
      remoteAddress: '127.0.0.1',
      ...overrides,
    },
    new AbortController().signal,
  );
}
