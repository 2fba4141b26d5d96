/**
 * The embedded server in a process of its own, for load scripts and tests that must not share
 * an event loop with the server. Run with `--serve`: prints one JSON line `{ httpsUrl, httpUrl,
 * caCert, http3 }`, then serves until its stdin closes. Imported (or run by `node --test`)
 * without the flag, it does nothing.
 */
import { startEmbeddedServer } from '../../src/server/embedded.js';

if (process.argv.includes('--serve')) {
  const server = await startEmbeddedServer();
  process.stdout.write(`${JSON.stringify({ httpsUrl: server.httpsUrl, httpUrl: server.httpUrl, caCert: server.caCert, http3: server.http3 })}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => {
    void server.close().then(() => process.exit(0));
  });
}
