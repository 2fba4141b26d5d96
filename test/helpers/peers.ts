/**
 * Tests that need an independent peer (Caddy, nghttpd, h2o, ngtcp2, python3-hpack, chromium) call
 * `requirePeer` first: a missing one fails the test with what to install, never skips it.
 */
// @ts-expect-error: a plain ESM script shared with `npm test`'s pretest step, without types.
import { PEERS, installHint, missingPeers } from '../../../scripts/peers.mjs';

interface Peer {
  binary?: string;
  python?: string;
  pkg: string;
  why: string;
}

export function requirePeer(name: string): void {
  const missing = (missingPeers as () => Peer[])().filter((p) => p.binary === name || p.python === name);
  if (missing.length > 0) throw new Error((installHint as (m: Peer[]) => string)(missing));
  if (!(PEERS as Peer[]).some((p) => p.binary === name || p.python === name)) throw new Error(`unknown test peer ${name}`);
}
