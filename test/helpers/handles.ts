/**
 * Every socket and timer the process creates, tracked from creation with `async_hooks`, so a
 * test can ask which of those it created are still open. `process.getActiveResourcesInfo()`
 * cannot answer that: it lists only ref'd handles, and the pool unrefs its idle sockets and its
 * timers, so an idle connection left open passed unseen.
 *
 * The hook is installed when this module is loaded, which is before a test file's servers and
 * pools exist (each test file runs in its own process and imports its helpers first).
 *
 * A handle counts as closed when its `destroy` hook ran: a socket's (TCPWRAP, UDPWRAP) when
 * libuv closed it, a timer's when it fired or was cleared. A TLSWRAP is the exception: Node
 * emits its `destroy` only when the wrapper is garbage-collected, so a TLS socket counts as
 * closed once the TCP handle beneath it (`_parent`) is.
 *
 * `MUXPOOL_LEAK_STACKS=1` records where each tracked handle was created (a short stack), at a
 * cost, so a leak report says who opened what was left.
 */
import { createHook } from 'node:async_hooks';

/** What the tracker watches: network handles and timers. Servers' listening handles are not. */
export const TRACKED_TYPES: ReadonlySet<string> = new Set(['TCPWRAP', 'TLSWRAP', 'UDPWRAP', 'Timeout']);

const captureStacks = process.env['MUXPOOL_LEAK_STACKS'] === '1';

export interface TrackedHandle {
  asyncId: number;
  type: string;
  /** Creation order: larger is later. */
  seq: number;
  createdAt: number;
  /** Where it was created, when `MUXPOOL_LEAK_STACKS=1`. */
  stack: string | undefined;
  /** A socket a listening server accepted (the far end of a client's connection), not one dialed. */
  accepted: boolean;
  /** TLSWRAP only: the wrapper, weakly (its `_parent` tells whether the socket beneath closed). */
  wrapper: WeakRef<object> | undefined;
}

const live = new Map<number, TrackedHandle>();
/** A TCP or pipe handle's async id, found from the handle object (a TLSWRAP's `_parent`). */
const handleIds = new WeakMap<object, number>();
/** Listening TCP handles: a TCPWRAP they trigger is an accepted connection. */
const listeners = new Set<number>();
/** Live PIPEWRAP handles (Unix domain sockets among them), by async id. */
const pipes = new Set<number>();
let seq = 0;
/** Timers the tracker itself arms while it waits are not the test's. */
let ownTimers = 0;

function shortStack(): string {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 40;
  const lines = (new Error().stack ?? '').split('\n').slice(1);
  Error.stackTraceLimit = limit;
  // Drop frames of the hook machinery and of Node's internals; keep the first few of ours.
  const useful = lines.filter((line) => !line.includes('node:internal') && !line.includes('/helpers/handles.'));
  return useful.slice(0, 8).map((line) => line.trim()).join('\n    ');
}

createHook({
  init(asyncId, type, triggerAsyncId, resource): void {
    if (type === 'TCPSERVERWRAP') listeners.add(asyncId);
    if (type === 'PIPEWRAP') {
      // Not reported itself (stdio and child-process pipes are PIPEWRAPs too), but a TLS socket
      // over a Unix domain socket closes when its pipe does.
      handleIds.set(resource, asyncId);
      pipes.add(asyncId);
      return;
    }
    if (!TRACKED_TYPES.has(type)) return;
    if (type === 'Timeout' && ownTimers > 0) return;
    if (type === 'TCPWRAP') handleIds.set(resource, asyncId);
    live.set(asyncId, {
      asyncId,
      type,
      seq: ++seq,
      createdAt: Date.now(),
      stack: captureStacks ? shortStack() : undefined,
      accepted: type === 'TCPWRAP' && listeners.has(triggerAsyncId),
      wrapper: type === 'TLSWRAP' ? new WeakRef(resource) : undefined,
    });
  },
  destroy(asyncId): void {
    live.delete(asyncId);
    pipes.delete(asyncId);
    listeners.delete(asyncId);
  },
}).enable();

/** Whether the socket that owns a handle (Node keeps it under its internal `owner_symbol`) is destroyed. */
function ownerDestroyed(wrapper: object): boolean {
  const symbol = Object.getOwnPropertySymbols(wrapper).find((s) => s.description === 'owner_symbol');
  const owner = symbol === undefined ? undefined : (wrapper as Record<symbol, { destroyed?: unknown } | undefined>)[symbol];
  return owner?.destroyed === true;
}

/** True when the handle is still open (a TLSWRAP whose TCP handle closed is not). */
function isOpen(handle: TrackedHandle): boolean {
  if (!live.has(handle.asyncId)) return false;
  if (handle.wrapper === undefined) return true;
  const wrapper = handle.wrapper.deref() as { _parent?: unknown } | undefined;
  if (wrapper === undefined) return false; // Collected: its destroy hook is on its way.
  const parent = wrapper._parent;
  const parentId = typeof parent === 'object' && parent !== null ? handleIds.get(parent) : undefined;
  // Over a stream that is not a tracked TCP handle (TLS inside TLS, through an https:// proxy),
  // its socket's `destroyed` says it closed; the destroy hook waits for garbage collection.
  if (parentId === undefined) return !ownerDestroyed(wrapper);
  if (live.has(parentId) || pipes.has(parentId)) return true;
  live.delete(handle.asyncId);
  return false;
}

/** A point in time: handles created after it are the ones `openSince` reports. */
export function handleMark(): number {
  return seq;
}

/** Tracked handles created after `mark` and still open, oldest first. */
export function openSince(mark: number): TrackedHandle[] {
  const open: TrackedHandle[] = [];
  for (const handle of [...live.values()]) {
    if (handle.seq > mark && isOpen(handle)) open.push(handle);
  }
  return open.sort((a, b) => a.seq - b.seq);
}

/** Waits `ms` on a timer the tracker does not count. */
export function quietSleep(ms: number): Promise<void> {
  return new Promise((resolve) => {
    ownTimers++;
    try {
      setTimeout(resolve, ms);
    } finally {
      ownTimers--;
    }
  });
}

/** One line per handle: type, id, age, and where it was created when stacks are recorded. */
export function describeHandles(handles: readonly TrackedHandle[]): string {
  const now = Date.now();
  return handles
    .map((h) => `${h.type} #${h.asyncId} (${now - h.createdAt} ms old${h.accepted ? ', accepted by a server in this process' : ''})${h.stack === undefined || h.stack === '' ? '' : `\n    ${h.stack}`}`)
    .join('\n  ');
}
