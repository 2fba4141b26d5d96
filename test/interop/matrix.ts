/**
 * Runs the interop matrix: every case against every server, each cell pass, fail or
 * unsupported-by-peer (with why) plus its time; renders it as markdown and JSON.
 *
 * A server is started once per set of server options (Retry, ChaCha20 only, verbose log, IPv6)
 * and shared by the cases that need that set; a proxy of ours is started per case that wants
 * one. Every case runs under a deadline, so a hang is a failed cell, not a stuck run.
 */
import { startUdpProxy, type UdpProxy } from '../helpers/udp-proxy.js';
import { CheckFailed, type Endpoint, Unsupported } from './client.js';
import { type CaseResult, type H2Case, type H3Case, H2_CASES, H3_CASES } from './cases.js';
import { runReverse } from './reverse.js';
import {
  Fixture,
  type H2ServerName,
  type H2Target,
  type H3ServerName,
  type H3Target,
  H2_SERVERS,
  H3_SERVERS,
  type Profile,
  startH2Target,
  startH3Target,
  unsupportedH2Option,
  unsupportedH3Option,
} from './targets.js';

export type CellStatus = 'pass' | 'fail' | 'unsupported';

export interface Cell {
  status: CellStatus;
  /** Wall-clock time of the case, server start excluded. */
  ms: number;
  /** Evidence for a pass, the failed rule for a fail, the reason for unsupported. */
  detail: string;
  metrics?: Record<string, number>;
}

export interface MatrixSection {
  title: string;
  servers: readonly string[];
  rows: Array<{ name: string; summary: string; cells: Record<string, Cell> }>;
}

export interface MatrixResult {
  profile: Profile['name'];
  date: string;
  durationMs: number;
  node: string;
  sections: MatrixSection[];
  /** Narrowed runs merged in since (`--merge`): when, and which cells they replaced. */
  reruns?: Array<{ date: string; node: string; cells: string[] }>;
}

export interface MatrixOptions {
  profile: Profile;
  /** Run only these case names (all when undefined). */
  cases?: readonly string[];
  /** Run only these servers / clients (all when undefined). */
  servers?: readonly string[];
  /** Run only these sections: h3, h2, reverse. */
  sections?: readonly ('h3' | 'h2' | 'reverse')[];
  /** Deadline per case. */
  caseTimeoutMs?: number;
  log?: (line: string) => void;
}

class Timeout extends Error {}

export async function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Timeout(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Turns a case's outcome into a cell. */
export async function runCell(work: () => Promise<CaseResult>, timeoutMs: number, what: string): Promise<Cell> {
  const started = performance.now();
  try {
    const result = await withDeadline(work(), timeoutMs, what);
    return { status: 'pass', ms: performance.now() - started, detail: result.detail, ...(result.metrics !== undefined ? { metrics: result.metrics } : {}) };
  } catch (err) {
    const ms = performance.now() - started;
    if (err instanceof Unsupported) return { status: 'unsupported', ms, detail: err.message };
    const message = err instanceof CheckFailed || err instanceof Timeout ? err.message : describe(err);
    return { status: 'fail', ms, detail: message };
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return `${typeof code === 'string' ? `${code}: ` : ''}${err.message}`;
  }
  return String(err);
}

function unsupportedCell(detail: string): Cell {
  return { status: 'unsupported', ms: 0, detail };
}

/** Servers started per option set, stopped together. */
class TargetCache<T extends { stop(): Promise<void> }> {
  private readonly started = new Map<string, Promise<T>>();
  constructor(private readonly start: (key: string) => Promise<T>) {}
  get(key: string): Promise<T> {
    let target = this.started.get(key);
    if (target === undefined) {
      target = this.start(key);
      this.started.set(key, target);
    }
    return target;
  }
  async stopAll(): Promise<void> {
    const all = [...this.started.values()];
    this.started.clear();
    await Promise.all(all.map(async (t) => (await t.catch(() => undefined))?.stop()));
  }
}

async function runH3Case(c: H3Case, target: H3Target, fixture: Fixture): Promise<CaseResult> {
  let proxy: UdpProxy | undefined;
  try {
    let endpoint: Endpoint = { host: target.host, port: target.port, caCert: target.caCert };
    if (c.proxy !== undefined) {
      const delayMs = c.name === 'longrtt' ? fixture.profile.longRttDelayMs : (c.proxy.delayMs ?? 0);
      proxy = await startUdpProxy({ ...c.proxy, delayMs, host: target.host, target: { host: target.host, port: target.port } });
      endpoint = { host: proxy.host, port: proxy.port, caCert: target.caCert };
    }
    return await c.run({ target, fixture, endpoint, proxy });
  } finally {
    await proxy?.close();
  }
}

/** What the HTTP/3 and HTTP/2 sections differ in: their servers, cases and how a case runs. */
interface SectionKind<S extends string, C extends { name: string; summary: string; server?: object }, T extends { stop(): Promise<void> }> {
  /** The log line's prefix. */
  label: string;
  title: string;
  servers: readonly S[];
  cases: readonly C[];
  start: (server: S, options: object) => Promise<T>;
  /** Why `c` cannot run against `server` (its own reason, or a server option the server lacks). */
  unsupported: (c: C, server: S) => string | undefined;
  run: (c: C, target: T) => Promise<CaseResult>;
}

/** Every case of `kind` against every server, one server (per set of options) at a time. */
async function runSection<S extends string, C extends { name: string; summary: string; server?: object }, T extends { stop(): Promise<void> }>(
  kind: SectionKind<S, C, T>,
  options: MatrixOptions,
  timeoutMs: number,
): Promise<MatrixSection> {
  const servers = kind.servers.filter((s) => options.servers === undefined || options.servers.includes(s));
  const cases = kind.cases.filter((c) => options.cases === undefined || options.cases.includes(c.name));
  const rows = cases.map((c) => ({ name: c.name, summary: c.summary, cells: {} as Record<string, Cell> }));
  for (const server of servers) {
    const targets = new TargetCache<T>((key) => kind.start(server, JSON.parse(key) as object));
    try {
      for (const [i, c] of cases.entries()) {
        const row = rows[i];
        if (row === undefined) continue;
        const cell = await sectionCell(kind, c, server, targets, timeoutMs);
        row.cells[server] = cell;
        options.log?.(`${kind.label} ${server.padEnd(8)} ${c.name.padEnd(20)} ${cell.status.padEnd(11)} ${(cell.ms / 1000).toFixed(1)} s  ${cell.detail}`);
      }
    } finally {
      await targets.stopAll();
    }
  }
  return { title: kind.title, servers, rows };
}

async function sectionCell<S extends string, C extends { name: string; summary: string; server?: object }, T extends { stop(): Promise<void> }>(
  kind: SectionKind<S, C, T>,
  c: C,
  server: S,
  targets: TargetCache<T>,
  timeoutMs: number,
): Promise<Cell> {
  const why = kind.unsupported(c, server);
  if (why !== undefined) return unsupportedCell(why);
  let target: T;
  try {
    target = await targets.get(JSON.stringify(c.server ?? {}));
  } catch (err) {
    return { status: 'fail', ms: 0, detail: `the server did not start: ${describe(err)}` };
  }
  return runCell(() => kind.run(c, target), timeoutMs, `${c.name} against ${server}`);
}

function h3Section(options: MatrixOptions, fixture: Fixture, timeoutMs: number): Promise<MatrixSection> {
  const kind: SectionKind<H3ServerName, H3Case, H3Target> = {
    label: 'h3',
    title: 'HTTP/3 client (muxpool) against HTTP/3 servers',
    servers: H3_SERVERS,
    cases: H3_CASES,
    start: (server, serverOptions) => startH3Target(server, fixture, serverOptions),
    unsupported: (c, server) => c.unsupported?.(server) ?? unsupportedH3Option(server, c.server ?? {}),
    run: (c, target) => runH3Case(c, target, fixture),
  };
  return runSection(kind, options, timeoutMs);
}

function h2Section(options: MatrixOptions, fixture: Fixture, timeoutMs: number): Promise<MatrixSection> {
  const kind: SectionKind<H2ServerName, H2Case, H2Target> = {
    label: 'h2',
    title: 'HTTP/2 client (muxpool) against HTTP/2 servers',
    servers: H2_SERVERS,
    cases: H2_CASES,
    start: (server, serverOptions) => startH2Target(server, fixture, serverOptions),
    unsupported: (c, server) => c.unsupported?.(server) ?? unsupportedH2Option(server, c.server ?? {}),
    run: (c, target) => {
      const endpoint: Endpoint = { host: target.host, port: target.port, caCert: target.caCert };
      return c.run({ target, fixture, endpoint, proxy: undefined });
    },
  };
  return runSection(kind, options, timeoutMs);
}

export async function runMatrix(options: MatrixOptions): Promise<MatrixResult> {
  const started = performance.now();
  const fixture = new Fixture(options.profile);
  // The full profile's 20 handshakes under 30% loss can take minutes at worst (PTO backoff).
  const timeoutMs = options.caseTimeoutMs ?? (options.profile.name === 'ci' ? 30_000 : 240_000);
  const sections: MatrixSection[] = [];
  const wanted = options.sections ?? ['h3', 'h2', 'reverse'];
  if (wanted.includes('h3')) sections.push(await h3Section(options, fixture, timeoutMs));
  if (wanted.includes('h2')) sections.push(await h2Section(options, fixture, timeoutMs));
  if (wanted.includes('reverse')) sections.push(await runReverse(options, fixture, timeoutMs));
  return {
    profile: options.profile.name,
    date: new Date().toISOString(),
    durationMs: performance.now() - started,
    node: process.version,
    sections,
  };
}

// ---------------------------------------------------------------------------------------------
// Rendering

function cellText(cell: Cell | undefined, note: number | undefined): string {
  if (cell === undefined) return '';
  const time = cell.ms >= 1000 ? `${(cell.ms / 1000).toFixed(1)} s` : `${cell.ms.toFixed(0)} ms`;
  const ref = note === undefined ? '' : ` [${note}]`;
  if (cell.status === 'pass') return `pass ${time}${ref}`;
  if (cell.status === 'fail') return `**FAIL** ${time}${ref}`;
  return `unsupported${ref}`;
}

/** The matrix as markdown tables; each fail and unsupported cell gets a numbered note with its reason. */
export function renderMarkdown(result: MatrixResult): string {
  const out: string[] = [];
  for (const section of result.sections) {
    out.push(`### ${section.title}`, '');
    out.push(`| case | ${section.servers.join(' | ')} |`, `|---|${section.servers.map(() => '---|').join('')}`);
    const notes: string[] = [];
    const noteIds = new Map<string, number>();
    for (const row of section.rows) {
      const cells = section.servers.map((server) => {
        const cell = row.cells[server];
        if (cell === undefined) return '';
        let note: number | undefined;
        if (cell.status !== 'pass' || cell.metrics !== undefined) {
          const text = cell.status === 'pass' ? `${row.name} / ${server}: ${cell.detail}` : cell.status === 'fail' ? `${row.name} / ${server}: ${cell.detail}` : cell.detail;
          note = noteIds.get(text);
          if (note === undefined) {
            notes.push(text);
            note = notes.length;
            noteIds.set(text, note);
          }
        }
        return cellText(cell, note);
      });
      out.push(`| \`${row.name}\` | ${cells.join(' | ')} |`);
    }
    out.push('');
    notes.forEach((text, i) => out.push(`${i + 1}. ${text}`));
    out.push('');
  }
  return out.join('\n');
}

/** A plain-text table for the terminal. */
export function renderText(result: MatrixResult): string {
  const out: string[] = [];
  for (const section of result.sections) {
    out.push(section.title);
    const width = 22;
    out.push(['case'.padEnd(width), ...section.servers.map((s) => s.padEnd(16))].join(''));
    for (const row of section.rows) {
      const cells = section.servers.map((server) => {
        const cell = row.cells[server];
        if (cell === undefined) return ''.padEnd(16);
        const label = cell.status === 'pass' ? `pass ${(cell.ms / 1000).toFixed(1)}s` : cell.status === 'fail' ? `FAIL ${(cell.ms / 1000).toFixed(1)}s` : 'unsupported';
        return label.padEnd(16);
      });
      out.push([row.name.padEnd(width), ...cells].join(''));
    }
    out.push('');
  }
  return out.join('\n');
}

/**
 * `base` with the cells of a narrowed run (`partial`, same profile) in place of its own: rows
 * and sections `base` lacks are added (a row after the one it follows in `partial`, else at the
 * end), row summaries are taken from `partial`, and `reruns` records which cells changed when.
 */
export function mergeResults(base: MatrixResult, partial: MatrixResult): MatrixResult {
  if (base.profile !== partial.profile) throw new Error(`cannot merge a ${partial.profile} run into a ${base.profile} result`);
  const merged = structuredClone(base);
  const cells: string[] = [];
  for (const section of partial.sections) {
    let target = merged.sections.find((s) => s.title === section.title);
    if (target === undefined) {
      target = { title: section.title, servers: [...section.servers], rows: [] };
      merged.sections.push(target);
    }
    for (const server of section.servers) if (!target.servers.includes(server)) target.servers = [...target.servers, server];
    for (const [i, row] of section.rows.entries()) {
      let into = target.rows.find((r) => r.name === row.name);
      if (into === undefined) {
        into = { name: row.name, summary: row.summary, cells: {} };
        const previous = section.rows[i - 1]?.name;
        const at = previous === undefined ? -1 : target.rows.findIndex((r) => r.name === previous);
        target.rows.splice(at >= 0 ? at + 1 : target.rows.length, 0, into);
      }
      into.summary = row.summary;
      for (const [server, cell] of Object.entries(row.cells)) {
        into.cells[server] = cell;
        cells.push(`${row.name} / ${server}`);
      }
    }
  }
  merged.reruns = [...(base.reruns ?? []), { date: partial.date, node: partial.node, cells }];
  return merged;
}

/** The line above the published tables: the run's date, profile and time, and any cells re-run since. */
export function runHeader(result: MatrixResult): string {
  const when = (date: string): string => `${date.slice(0, 16).replace('T', ' ')} UTC`;
  const reruns = (result.reruns ?? []).map((r) => ` Re-run on ${when(r.date)} (Node ${r.node}): ${r.cells.join(', ')}.`).join('');
  return `Run of ${when(result.date)}, ${result.profile} profile, Node ${result.node}, ${(result.durationMs / 1000).toFixed(0)} s in all.${reruns}`;
}

/** Cells that passed in `baseline` and do not pass now: the regressions CI fails on. */
export function regressions(baseline: MatrixResult, current: MatrixResult): string[] {
  const found: string[] = [];
  for (const section of current.sections) {
    const old = baseline.sections.find((s) => s.title === section.title);
    if (old === undefined) continue;
    for (const row of section.rows) {
      const oldRow = old.rows.find((r) => r.name === row.name);
      for (const server of section.servers) {
        const was = oldRow?.cells[server]?.status;
        const now = row.cells[server];
        if (was === 'pass' && now !== undefined && now.status !== 'pass') {
          found.push(`${section.title}: ${row.name} / ${server} passed, now ${now.status}: ${now.detail}`);
        }
      }
    }
  }
  return found;
}
