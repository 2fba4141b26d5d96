/** The `muxpool` command's exit status for an error: curl's code where curl has one, else 1. */
import { MuxpoolError, causeBeneath, isMuxpoolError } from '../errors.js';

/** curl's exit codes where curl has one. */
export function exitCodeFor(err: unknown): number {
  if (!(err instanceof MuxpoolError)) return 1;
  switch (err.code) {
    case 'MUXPOOL_ERR_DNS':
      return 6;
    case 'MUXPOOL_ERR_PROXY_CONNECT':
      // curl: 5 when the proxy's name did not resolve, 7 when it did not answer. Judged by the
      // error beneath the proxy failure, not by its wording.
      return isMuxpoolError(causeBeneath(err), 'MUXPOOL_ERR_DNS') ? 5 : 7;
    case 'MUXPOOL_ERR_PROXY_TUNNEL':
    case 'MUXPOOL_ERR_PROXY_AUTH':
      return 56;
    case 'MUXPOOL_ERR_SOCKS':
      return 97;
    case 'MUXPOOL_ERR_CONNECT_REFUSED':
    case 'MUXPOOL_ERR_CONNECT':
      return 7;
    case 'MUXPOOL_ERR_CONNECT_TIMEOUT':
    case 'MUXPOOL_ERR_QUIC_HANDSHAKE_TIMEOUT':
    case 'MUXPOOL_ERR_REQUEST_TIMEOUT':
    case 'MUXPOOL_ERR_READ_TIMEOUT':
      return 28;
    case 'MUXPOOL_ERR_TLS_CERT':
    case 'MUXPOOL_ERR_TLS_HOSTNAME':
      return 60;
    case 'MUXPOOL_ERR_INVALID_URL':
    case 'MUXPOOL_ERR_UNSUPPORTED_SCHEME':
      return 3;
    case 'MUXPOOL_ERR_TOO_MANY_REDIRECTS':
      return 47;
    case 'MUXPOOL_ERR_TLS_PIN':
      return 90;
    case 'MUXPOOL_ERR_TLS_CLIENT_CERT':
      return 35;
    case 'MUXPOOL_ERR_DECODE':
      return 61;
    default:
      return 1;
  }
}

