/**
 * muxpool's public surface. Everything a user imports comes from here.
 */
export { ERROR_CODES, MuxpoolError, isMuxpoolError } from './errors.js';
export type { ErrorCode, ErrorOrigin, MuxpoolErrorOptions } from './errors.js';
export { systemClock } from './core/clock.js';
export type { Clock, Timer } from './core/clock.js';
export { HttpVersion } from './protocol/version.js';
export type { ConnectionProtocol } from './protocol/version.js';
export { PoolKey } from './pool/key.js';
export type { PoolKeyRoute, ProxyEndpoint, TlsIdentity } from './pool/key.js';
export { PoolEntry } from './pool/entry.js';
export type { Connection } from './protocol/connection.js';
export type { ConnectionObserver, ConnectionState, Poolable } from './pool/poolable.js';
export type { IncomingHeaders, RawFieldSource, RequestBody, RequestHead, RequestStream, StreamHandler } from './protocol/message.js';
export type { AcquireOptions, CleanupTask, PoolCoreOptions } from './pool/pool.js';
export type { ConnectionSnapshot, PoolStats } from './client/stats.js';
export { ConnectionPool, getDefaultPool, request } from './client/pool.js';
export type { ProxyPerScheme } from './client/proxy-env.js';
export type { ConnectionPoolOptions, DispatchFunction, DispatchInterceptor, HttpPoolEntry, PoolEventMap, RequestOptions } from './client/pool.js';
export type { DispatchController, DispatchHandler, DispatchOptions } from './client/dispatcher.js';
export type { DispatchBody, DispatchResponseData, ResponseStartData, StreamResult } from './client/dispatcher-api.js';
export type { RequestPriority } from './pool/waiter.js';
export type { ResolvedAddress, Resolver } from './connect/resolve.js';
export { dnsTtlResolver } from './connect/resolve.js';
export { FileOriginStore, MemoryOriginStore } from './connect/origin-store.js';
export type { OriginRecord, OriginStore } from './connect/origin-store.js';
export { Response } from './client/response.js';
export type {
  RequestConnectionMessage,
  RequestCreateMessage,
  RequestEndMessage,
  RequestErrorMessage,
  RequestHeadersSentMessage,
  RequestInfo,
  RequestResponseMessage,
  RequestTimings,
} from './client/request-events.js';
export type { BodyInit, HeadersInit } from './client/prepare.js';
