// The interop matrix in CI, one column group (see ci-group.ts; full run: npm run interop).
import { test } from 'node:test';
import { runGroup } from './ci-group.js';

test('interop matrix (CI profile): HTTP/3 cases against gtlsserver', () => runGroup({ sections: ['h3'], servers: ['ngtcp2'] }));
