/**
 * Reads a proxy's handshake replies off a socket: whole messages, as a `take` function sizes
 * them, with whatever came after handed back for the tunnel. Uses 'readable' and `read()`, not
 * 'data': once the reader lets go the stream is neither flowing nor paused, so the protocol
 * driver that attaches next starts it as on a fresh socket.
 */
import type { Duplex } from 'node:stream';

/** How many bytes of `buffered` make the next message; -1: not enough yet. May throw (malformed). */
export type TakeFunction = (buffered: Buffer) => number;

/** Why a read ended without a message: the peer closed, or the socket failed. */
export class ReaderClosedError extends Error {
  constructor(readonly received: number, cause?: unknown) {
    super(`the proxy closed the connection${received > 0 ? ` after ${received} bytes of its reply` : ' without replying'}`, { cause });
  }
}

interface PendingRead {
  take: TakeFunction;
  resolve: (message: Buffer) => void;
  reject: (err: unknown) => void;
}

export class HandshakeReader {
  private buffered: Buffer = Buffer.alloc(0);
  private pending: PendingRead | undefined;
  private failure: Error | undefined;
  private readonly socket: Duplex;
  private readonly onReadable = (): void => {
    let chunk: Buffer | null;
    // Bounded by what the socket has buffered; `take` bounds the message size.
    while ((chunk = this.socket.read() as Buffer | null) !== null) {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    }
    this.pump();
  };
  private readonly onEnd = (): void => this.fail(new ReaderClosedError(this.buffered.length));
  private readonly onError = (err: Error): void => this.fail(new ReaderClosedError(this.buffered.length, err));

  constructor(socket: Duplex) {
    this.socket = socket;
    socket.on('readable', this.onReadable);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  /** The next message, as many bytes as `take` says once it can tell. */
  read(take: TakeFunction): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      this.pending = { take, resolve, reject };
      this.pump();
    });
  }

  /** Stops reading; returns the bytes that came after the last message (they belong to the tunnel). */
  release(): Buffer {
    this.socket.off('readable', this.onReadable);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    const rest = this.buffered;
    this.buffered = Buffer.alloc(0);
    return rest;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.pump();
  }

  private pump(): void {
    const pending = this.pending;
    if (pending === undefined) return;
    let size: number;
    try {
      size = pending.take(this.buffered);
    } catch (err) {
      this.pending = undefined;
      pending.reject(err);
      return;
    }
    if (size >= 0) {
      this.pending = undefined;
      const message = this.buffered.subarray(0, size);
      this.buffered = this.buffered.subarray(size);
      pending.resolve(message);
      return;
    }
    if (this.failure !== undefined) {
      this.pending = undefined;
      pending.reject(this.failure);
    }
  }
}
