/**
 * What the pool holds for a connection of our HTTP/2 engine: one `Connection` per origin that
 * uses it. Usually a connection has exactly one; coalescing (RFC 9113 §9.1.1) gives it more, and
 * then they share its stream limit and its fate (GOAWAY, PING failure, close). `session` is the
 * engine, under the name the connector and the coalescing index already use.
 */
import type { MuxpoolError } from '../../errors.js';
import type { Connection } from '../connection.js';
import type { ConnectionObserver, ConnectionState } from '../../pool/poolable.js';
import type { RequestBody, RequestHead, RequestStream, StreamHandler } from '../message.js';
import type { H2Engine } from './engine.js';

export class H2EngineView implements Connection {
  readonly protocol = 'h2' as const;
  readonly shareable = true;
  readonly expiresAt = undefined;
  readonly session: H2Engine;
  /** This view's own state; the session's (GOAWAY, PING failure, close) overrides it. */
  private ownState: ConnectionState = 'open';
  /** Streams this view opened that are still open. */
  activeStreams = 0;
  private observer: ConnectionObserver | undefined;

  /** The pool key this view serves. */
  readonly keyId: string;

  constructor(session: H2Engine, keyId: string) {
    this.session = session;
    this.keyId = keyId;
  }

  get state(): ConnectionState {
    const session = this.session.state;
    if (this.ownState === 'closed' || session === 'closed') return 'closed';
    if (this.ownState === 'draining' || session === 'draining') return 'draining';
    return 'open';
  }

  /** The session's id: coalesced origins report the connection that really served them. */
  get id(): string {
    return this.session.id;
  }

  get resumed(): boolean | undefined {
    return this.session.resumed;
  }

  get remoteAddress(): string | undefined {
    return this.session.remoteAddress;
  }

  /** Requests the session carried, for every origin: a coalesced first request is a reuse. */
  get requestCount(): number {
    return this.session.requestCount;
  }

  /** This view may use the session's free streams plus the ones it holds. */
  get maxStreams(): number {
    const session = this.session;
    return Math.max(0, session.maxStreams - (session.activeStreams - this.activeStreams));
  }

  setObserver(observer: ConnectionObserver): void {
    this.observer = observer;
  }

  isUsable(): boolean {
    return this.state === 'open' && this.session.acceptsStreams;
  }

  openStream(head: RequestHead, body: RequestBody, handler: StreamHandler): RequestStream {
    return this.session.openStream(this, head, body, handler);
  }

  drain(): void {
    if (this.state !== 'open') return;
    this.ownState = 'draining';
    if (this.session.views.size === 1) {
      this.session.beginDraining();
      return;
    }
    // Other origins still use the session: only this view stops; it leaves once idle.
    if (this.activeStreams === 0) this.destroy();
    else this.observer?.onCapacityChange(this);
  }

  destroy(err?: MuxpoolError): void {
    if (this.ownState === 'closed') return;
    this.ownState = 'closed';
    this.session.removeView(this, err);
    const observer = this.observer;
    this.observer = undefined;
    observer?.onClose(this, err);
  }

  // ---------------------------------------------------------------------------------------
  // Called by the session

  notifyCapacity(): void {
    this.observer?.onCapacityChange(this);
  }

  onEngineDraining(): void {
    this.observer?.onCapacityChange(this);
  }

  onEngineClosed(err: MuxpoolError | undefined): void {
    if (this.observer === undefined) return;
    this.ownState = 'closed';
    const observer = this.observer;
    this.observer = undefined;
    observer?.onClose(this, err);
  }
}
