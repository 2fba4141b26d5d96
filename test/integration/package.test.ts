/**
 * The package as an npm user gets it: what `npm pack` ships (LICENSE, dist, source maps that
 * resolve), and a CommonJS and an ESM consumer that install it and make a request with it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startHttpServer } from '../helpers/servers.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

test('npm pack ships LICENSE, dist and the README; no sources, and every source map carries its sources', async () => {
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT });
  const [packed] = JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>;
  const files = (packed?.files ?? []).map((f) => f.path);
  for (const needed of ['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.d.ts', 'dist/testing.js']) {
    assert.ok(files.includes(needed), `${needed} is shipped`);
  }
  assert.deepEqual(files.filter((f) => f.startsWith('src/') || f.startsWith('test/')), []);
  const maps = files.filter((f) => f.endsWith('.js.map'));
  assert.ok(maps.length > 10);
  for (const map of maps.slice(0, 20)) {
    const parsed = JSON.parse(await readFile(join(ROOT, map), 'utf8')) as { sources: string[]; sourcesContent?: string[] };
    assert.equal(parsed.sourcesContent?.length, parsed.sources.length, `${map} resolves without the sources`);
  }
});

test('package.json tells npm where the project lives: repository, homepage and bugs name one repository; keywords', async () => {
  const manifest = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
    repository?: { type?: string; url?: string };
    homepage?: string;
    bugs?: { url?: string };
    keywords?: string[];
  };
  assert.equal(manifest.repository?.type, 'git');
  const repo = /^git\+(https:\/\/[^\s]+?)\.git$/.exec(manifest.repository?.url ?? '')?.[1];
  assert.ok(repo !== undefined, `repository.url is a git+https URL: ${String(manifest.repository?.url)}`);
  // npm shows these on the package page; they must point at the same place, not three.
  assert.equal(manifest.homepage, `${repo}#readme`);
  assert.equal(manifest.bugs?.url, `${repo}/issues`);
  for (const word of ['http2', 'http3', 'undici', 'fetch']) assert.ok(manifest.keywords?.includes(word), `keyword ${word}`);
});

test("require('muxpool') from CommonJS and import from ESM: both make a request; muxpool/testing too", async () => {
  const server = await startHttpServer((_req, res) => res.end('hello consumer'));
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-consumer-'));
  try {
    await mkdir(join(dir, 'node_modules'));
    await symlink(ROOT, join(dir, 'node_modules', 'muxpool'), 'dir');
    await writeFile(
      join(dir, 'consumer.cjs'),
      `const { ConnectionPool, isMuxpoolError } = require('muxpool');
const { ManualClock } = require('muxpool/testing');
(async () => {
  const pool = new ConnectionPool();
  const res = await pool.request(process.argv[2]);
  const text = await res.text();
  await pool.close();
  console.log(JSON.stringify({ text, clock: typeof new ManualClock().now(), guard: typeof isMuxpoolError }));
})();
`,
    );
    await writeFile(
      join(dir, 'consumer.mjs'),
      `import { ConnectionPool } from 'muxpool';
const pool = new ConnectionPool();
const res = await pool.request(process.argv[2]);
console.log(JSON.stringify({ text: await res.text() }));
await pool.close();
`,
    );
    const cjs = await run(process.execPath, ['consumer.cjs', `${server.url}/`], { cwd: dir });
    assert.deepEqual(JSON.parse(cjs.stdout), { text: 'hello consumer', clock: 'number', guard: 'function' });
    assert.equal(cjs.stderr, '', 'no warning on require()');
    const esm = await run(process.execPath, ['consumer.mjs', `${server.url}/`], { cwd: dir });
    assert.deepEqual(JSON.parse(esm.stdout), { text: 'hello consumer' });
  } finally {
    await rm(dir, { recursive: true, force: true });
    await server.close();
  }
});
