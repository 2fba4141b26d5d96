// The interop matrix in CI, one column group (see ci-group.ts; full run: npm run interop).
import { test } from 'node:test';
import { runGroup } from './ci-group.js';

test('interop matrix (CI profile): HTTP/3 cases against Caddy', () => runGroup({ sections: ['h3'], servers: ['caddy'] }));
