/** Argument pieces shared by the fetch and bench commands. */

/** `-H 'name: value'` as curl takes it; undefined when there is no name before a colon. */
export function splitHeaderArg(header: string): [string, string] | undefined {
  const colon = header.indexOf(':');
  if (colon <= 0) return undefined;
  return [header.slice(0, colon).trim(), header.slice(colon + 1).trim()];
}
