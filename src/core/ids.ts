/** Process-wide counters for ids that show up in responses, stats and logs. */
let nextConnection = 0;

/** `h1-7`, `h2-3`, `h3-12`: short, unique in the process, and telling the protocol at a glance. */
export function nextConnectionId(protocolTag: 'h1' | 'h2' | 'h3'): string {
  nextConnection++;
  return `${protocolTag}-${nextConnection}`;
}
