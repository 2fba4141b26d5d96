/**
 * The benchmark's HTTP/2 server: `node:http2` over TLS (ALPN h2 only), run in its own process
 * (pinned to one core when taskset exists) so clients and server do not share a CPU. It reads
 * its key and certificate from the paths given as arguments, answers every stream with a small
 * fixed body, and reports its port to the parent over IPC (see h2-child-server.ts).
 */
import { serveH2ChildProcess } from './h2-child-server.js';

const body = Buffer.from('hello world\n');
const responseHeaders = { ':status': 200, 'content-type': 'text/plain', 'content-length': body.length };
serveH2ChildProcess(
  'h2-server.js',
  // More streams than the highest concurrency any client runs on its one session.
  { settings: { maxConcurrentStreams: 1000 } },
  (stream) => {
    stream.respond(responseHeaders);
    stream.end(body);
  },
);
