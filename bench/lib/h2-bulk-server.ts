/**
 * The bulk benchmark's HTTP/2 server: `node:http2` over TLS (ALPN h2 only) in its own process
 * (pinned to core 0 when taskset exists), answering `/bulk/N` with the first N bytes of one
 * buffer allocated at start (256 MiB), so no request costs a file read or an allocation. Its
 * receive windows are large (it only receives requests; they matter for nothing else), and it
 * sends whatever the client's windows allow. Reads its key and certificate from the paths
 * given as arguments and reports its port to the parent over IPC (see h2-child-server.ts).
 */
import { serveH2ChildProcess } from './h2-child-server.js';

const BULK_MAX_BYTES = 256 * 1024 * 1024;
// Random-looking but cheap: a repeating pattern is as costly to encrypt as random bytes.
const payload = Buffer.allocUnsafe(BULK_MAX_BYTES);
for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE((i * 2654435761) >>> 0, i);

serveH2ChildProcess(
  'h2-bulk-server.js',
  {
    settings: { maxConcurrentStreams: 1000, initialWindowSize: 16 * 1024 * 1024, maxFrameSize: 1024 * 1024 - 1 },
    // node:http2 counts the body bytes queued for sending against this (10 MB by default) and
    // refuses streams beyond it (RST_STREAM ENHANCE_YOUR_CALM): 16 queued 16 MiB bodies need more.
    maxSessionMemory: 1024,
  },
  (stream, headers) => {
    const match = /^\/bulk\/(\d+)$/.exec(headers[':path'] ?? '');
    const length = match === null ? 0 : Math.min(Number(match[1]), BULK_MAX_BYTES);
    stream.respond({ ':status': 200, 'content-type': 'application/octet-stream', 'content-length': length });
    stream.end(payload.subarray(0, length));
  },
);
