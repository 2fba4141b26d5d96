/** The QUIC driver's surface, for the HTTP/3 layer and the embedded server. */
export { peerAddress, type PeerAddress } from './address.js';
export { connectQuic, CONNECTION_ID_BYTES, type QuicConnectOptions } from './client.js';
export {
  QuicConfig,
  createQuicClientConfig,
  createQuicServerConfig,
  sharedQuicClientConfig,
  type QuicClientConfigOptions,
  type QuicServerConfigOptions,
  type QuicTransportOptions,
} from './config.js';
export { QuicConnection, type QuicCloseInfo, type QuicConnectionHandler } from './connection.js';
export { describeCloseCode } from './error-map.js';
export { bindingPackageName, loadQuiche } from './native.js';
export { QuicServer, type QuicServerOptions } from './server.js';
export type { QuicConnectionState } from './state.js';
