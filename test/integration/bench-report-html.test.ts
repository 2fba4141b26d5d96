/**
 * `muxpool bench --report FILE.html`, opened in a real browser (Debian's headless Chromium):
 * the page draws its uPlot charts without a console message, loads nothing from elsewhere, and a
 * screenshot shows them.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { CLI_MAIN, type RunOutcome, runProgram } from '../helpers/cli.js';
import { decodePng } from '../helpers/png.js';
import { requirePeer } from '../helpers/peers.js';

const CHROMIUM = 'chromium';
/** Each browser run ends within this, whatever happens to it. */
const BROWSER_LIMIT_MS = 30_000;
const WINDOW = { width: 1000, height: 1400 };

const run = (file: string, args: string[], timeoutMs: number): Promise<RunOutcome> =>
  runProgram(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 32 * 1024 * 1024 });

let dir: string;
let server: http.Server;
let target: string;
let requestCount = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'muxpool-bench-report-'));
  // Mostly 200s, some 404s, and now and then a connection dropped without an answer: the
  // report then has statuses and errors to break down.
  server = http.createServer((req, res) => {
    req.resume();
    const n = ++requestCount;
    if (n % 97 === 0) {
      req.socket.destroy();
      return;
    }
    const status = n % 10 === 0 ? 404 : 200;
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': 5 });
    res.end('hello');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  target = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

/** Headless Chromium on a profile of its own, with console messages on stderr. */
function chromium(args: string[]): Promise<RunOutcome> {
  return run(
    CHROMIUM,
    [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--hide-scrollbars',
      `--user-data-dir=${join(dir, `profile-${Math.random().toString(36).slice(2)}`)}`,
      `--window-size=${WINDOW.width},${WINDOW.height}`,
      '--enable-logging=stderr',
      '--v=0',
      ...args,
    ],
    BROWSER_LIMIT_MS,
  );
}

/** What the page wrote to the console (every message: the page itself writes none). */
const consoleLines = (stderr: string): string[] => stderr.split('\n').filter((line) => line.includes(':CONSOLE'));

test('--report: one self-contained HTML file whose uPlot charts render in Chromium without console errors', async () => {
  requirePeer(CHROMIUM);
  const file = join(dir, 'report.html');
  const bench = await run(process.execPath, [CLI_MAIN, 'bench', target, '-c', '4', '-d', '2', '-H', 'x-one: 1', '-H', 'x-two: 2', '--report', file, '--json'], 30_000);
  assert.equal(bench.code, 0, bench.stderr);
  const report = JSON.parse(bench.stdout) as { requests: number; errors: number; statusCodes: Record<string, number>; timeline: unknown[] };
  assert.ok(report.requests > 200, `requests: ${report.requests}`);
  assert.ok(report.errors > 0 && report.statusCodes['404'] !== undefined, JSON.stringify(report));

  const html = await readFile(file, 'utf8');
  // Self-contained: no element loads anything, and the only address in the file is the target's.
  assert.doesNotMatch(html, /<(link|img|iframe|object|embed)\b/i);
  assert.doesNotMatch(html, /<script[^>]*\bsrc=/i);
  assert.doesNotMatch(html, /@import|url\(/i);
  const addresses = new Set(html.match(/[a-z][a-z0-9+.-]*:\/\/[^\s"'<>)]*/gi) ?? []);
  assert.deepEqual([...addresses], [target]);
  // uPlot itself is inlined, and its licence notice kept.
  assert.match(html, /uPlot v1\.\d+\.\d+, \(c\) Leon Sorokin, MIT License/);
  assert.match(html, /var uPlot=function\(\)/);
  // The parts of the page the issue asks for.
  for (const part of ['Status codes', 'Errors', 'Command', 'Environment', 'closed-loop', 'MUXPOOL_ERR_', '>404<', 'x-one: 1']) {
    assert.ok(html.includes(part), `the report lacks ${part}`);
  }

  // The page as the browser left it once its scripts ran: three charts, each a uPlot canvas.
  const dom = await chromium(['--virtual-time-budget=5000', '--dump-dom', pathToFileURL(file).href]);
  assert.equal(dom.code, 0, dom.stderr.slice(-2000));
  assert.match(dom.stdout, /<html[^>]*\bdata-charts="rendered"/, dom.stdout.slice(0, 300));
  assert.match(dom.stdout, /<html[^>]*\bdata-charts-drawn="3"/);
  assert.doesNotMatch(dom.stdout, /<html[^>]*\bdata-chart-error/);
  assert.equal((dom.stdout.match(/<canvas\b/g) ?? []).length, 3);
  assert.equal((dom.stdout.match(/class="uplot\b/g) ?? []).length, 3);
  assert.deepEqual(consoleLines(dom.stderr), []);

  // A screenshot: far from blank, with the charts' blue series drawn (text alone is grey).
  const shotPath = join(dir, 'shot.png');
  const shot = await chromium([`--screenshot=${shotPath}`, pathToFileURL(file).href]);
  assert.equal(shot.code, 0, shot.stderr.slice(-2000));
  assert.deepEqual(consoleLines(shot.stderr), []);
  const png = decodePng(await readFile(shotPath));
  assert.equal(png.width, WINDOW.width);
  let painted = 0;
  let blue = 0;
  for (let i = 0; i < png.pixels.length; i += png.channels) {
    const r = png.pixels[i] as number;
    const g = png.pixels[i + 1] as number;
    const b = png.pixels[i + 2] as number;
    if (r < 240 || g < 240 || b < 240) painted++;
    if (b > r + 50 && b > g + 20) blue++;
  }
  const total = png.width * png.height;
  assert.ok(painted > total * 0.02, `painted pixels: ${painted} of ${total}`);
  assert.ok(blue > 2_000, `blue chart pixels: ${blue}`);
});

test('the report page sets its error marker when drawing fails (so a broken chart cannot pass as drawn)', async () => {
  requirePeer(CHROMIUM);
  // The report's own page with uPlot taken out: drawing throws, the marker says so, and the
  // browser reports the uncaught error on the console, where the test above would see it.
  const file = join(dir, 'report.html');
  const broken = join(dir, 'broken.html');
  const html = await readFile(file, 'utf8');
  await writeFile(broken, html.replace(/var uPlot=function\(\)/, 'var notUPlot=function()'));
  const dom = await chromium(['--virtual-time-budget=5000', '--dump-dom', pathToFileURL(broken).href]);
  assert.equal(dom.code, 0, dom.stderr.slice(-2000));
  assert.doesNotMatch(dom.stdout, /<html[^>]*\bdata-charts="rendered"/);
  assert.match(dom.stdout, /<html[^>]*\bdata-chart-error="[^"]*uPlot/);
  assert.ok(consoleLines(dom.stderr).some((line) => /Uncaught/.test(line)), dom.stderr.slice(-2000));
});
