/**
 * Node's own fetch dispatcher, and undici 7's `Agent`, in one process without mixing them up.
 *
 * Node's fetch loads its bundled undici on first use, and that module makes the process-wide
 * dispatcher (`Symbol.for('undici.globalDispatcher.1')`) only when none is set yet; undici 7 does
 * the same when it is imported. So a benchmark that imports undici 7 before Node's fetch ever ran
 * (as any static `import … from 'undici'` does) measures undici 7's Agent as "Node's default".
 * Here Node's is made first (reading `Headers` loads it) and undici 7 is imported after.
 * Import this module before anything that imports undici.
 */
const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

void globalThis.Headers;
/** The dispatcher Node's global fetch uses when given none: the bundled undici's Agent. */
export const nodeDefaultDispatcher: unknown = (globalThis as Record<symbol, unknown>)[GLOBAL_DISPATCHER];
const undici = await import('undici');
/** undici 7's Agent (the devDependency), for the "fetch + undici Agent" rows. */
export const UndiciAgent = undici.Agent;

if (nodeDefaultDispatcher === undefined || nodeDefaultDispatcher instanceof UndiciAgent) {
  throw new Error("Node's default fetch dispatcher is not the bundled undici's: was undici imported before bench/lib/node-fetch.ts?");
}

/** The dispatcher Node's global fetch would use right now. */
export function currentGlobalDispatcher(): unknown {
  return (globalThis as Record<symbol, unknown>)[GLOBAL_DISPATCHER];
}
