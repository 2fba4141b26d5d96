/** Argument pieces shared by the fetch and bench commands. */

/** `-H 'name: value'` as curl takes it; undefined when there is no name before a colon. */
export function splitHeaderArg(header: string): [string, string] | undefined {
  const colon = header.indexOf(':');
  if (colon <= 0) return undefined;
  return [header.slice(0, colon).trim(), header.slice(colon + 1).trim()];
}

/** The request options fetch and bench both take. */
export interface RequestOptionArgs {
  method: string | undefined;
  headers: Array<[string, string]>;
  cacert: string | undefined;
  insecure: boolean;
}

/**
 * Handles `-X`, `-H`, `--cacert` and `-k` into `args`; false when `arg` is none of them. `next`
 * takes the option's value from the command line; `usage` makes the caller's usage error.
 */
export function takeRequestOption(arg: string, next: () => string, args: RequestOptionArgs, usage: (message: string) => Error): boolean {
  switch (arg) {
    case '-X':
    case '--request':
      args.method = next();
      return true;
    case '-H':
    case '--header': {
      const header = next();
      const pair = splitHeaderArg(header);
      if (pair === undefined) throw usage(`-H expects 'name: value', got ${JSON.stringify(header)}`);
      args.headers.push(pair);
      return true;
    }
    case '--cacert':
      args.cacert = next();
      return true;
    case '-k':
    case '--insecure':
      args.insecure = true;
      return true;
    default:
      return false;
  }
}
