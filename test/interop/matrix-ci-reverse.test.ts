// The interop matrix in CI, one column group (see ci-group.ts; full run: npm run interop).
import { test } from 'node:test';
import { runGroup } from './ci-group.js';

test('interop matrix (CI profile): gtlsclient, h2load and nghttp against our servers', () => runGroup({ sections: ['reverse'] }));
