// The interop matrix in CI, one column group (see ci-group.ts; full run: npm run interop).
import { test } from 'node:test';
import { runGroup } from './ci-group.js';

test('interop matrix (CI profile): HTTP/2 cases against nghttpd, Caddy, h2o and node:http2', () => runGroup({ sections: ['h2'] }));
