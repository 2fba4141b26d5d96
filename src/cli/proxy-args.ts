/**
 * The fetch command's proxy flags, as curl has them: `-x/--proxy URL` (an empty URL turns
 * proxies off), `--noproxy LIST`, and without `-x` the proxies curl takes from the environment
 * (`http_proxy` in lower case only, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` in either case).
 * `-v` tells when a proxy carried the request.
 */
import diagnostics from 'node:diagnostics_channel';
import type { ConnectionPoolOptions } from '../client/pool.js';
import { type Environment, curlEnvironmentProxies } from '../client/proxy-env.js';

export interface ProxyArgs {
  /** `-x`: undefined when not given, '' to turn proxies off. */
  proxy: string | undefined;
  noproxy: string | undefined;
}

/** Handles `-x`, `--proxy` and `--noproxy` into `args`; false when `arg` is none of them. */
export function takeProxyOption(arg: string, next: () => string, args: ProxyArgs): boolean {
  switch (arg) {
    case '-x':
    case '--proxy':
      args.proxy = next();
      return true;
    case '--noproxy':
      args.noproxy = next();
      return true;
    default:
      return false;
  }
}

/** The pool options the flags and the environment make. */
export function proxyPoolOptions(args: ProxyArgs, env: Environment): Pick<ConnectionPoolOptions, 'proxy' | 'noProxy'> {
  if (args.proxy === '') return {};
  const fromEnv = curlEnvironmentProxies(env);
  // curl: --noproxy replaces NO_PROXY, which applies to -x as well as to the environment's proxies.
  const noProxy = args.noproxy ?? fromEnv.noProxy;
  const proxy = args.proxy ?? fromEnv.proxy;
  return noProxy === undefined ? { proxy } : { proxy, noProxy };
}

/** Writes `-v` lines for every connection a proxy carries, until the returned function is called. */
export function traceProxies(write: (line: string) => void): () => void {
  const listener = (message: unknown): void => {
    const { target, proxy, mode } = message as { target: string; proxy: string; mode: 'tunnel' | 'forward' };
    write(`* Using proxy ${proxy}\n`);
    if (mode === 'forward') write(`* forwarding the request to ${target} in absolute form\n`);
    else write(`* ${proxy.startsWith('socks') ? 'SOCKS5' : 'CONNECT'} tunnel established to ${target}\n`);
  };
  diagnostics.subscribe('muxpool:proxy', listener);
  return () => diagnostics.unsubscribe('muxpool:proxy', listener);
}
