/**
 * `@opentelemetry/api` is an optional peer: only `muxpool/otel` may import it. Walks the
 * compiled import graph of the main entry (and `muxpool/testing`) and fails if any module in
 * it imports an OpenTelemetry package, so a user without it installed can still load muxpool.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');
const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

/** Every bare specifier imported by `entry` and the relative modules it reaches. */
function packagesReachedFrom(entry: string): Set<string> {
  const seen = new Set<string>();
  const packages = new Set<string>();
  const queue = [resolve(SRC, entry)];
  // Bounded by the number of modules in the build.
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const match of readFileSync(file, 'utf8').matchAll(IMPORT)) {
      const specifier = (match[1] ?? match[2]) as string;
      if (specifier.startsWith('.')) queue.push(resolve(dirname(file), specifier));
      else packages.add(specifier);
    }
  }
  assert.ok(seen.size > 20, `walked the graph (${seen.size} modules)`);
  return packages;
}

test('the main entry and muxpool/testing never import @opentelemetry; muxpool/otel does', () => {
  for (const entry of ['index.js', 'testing.js']) {
    const otel = [...packagesReachedFrom(entry)].filter((p) => p.startsWith('@opentelemetry/'));
    assert.deepEqual(otel, [], `${entry} reaches ${otel.join(', ')}`);
  }
  assert.ok(packagesReachedFrom('otel.js').has('@opentelemetry/api'));
});
