// Prints the README's error table from the built ERROR_CODES (run after `npm run build`).
import { ERROR_CODES } from '../dist/errors.js';

for (const [code, meaning] of Object.entries(ERROR_CODES)) console.log(`| \`${code}\` | ${meaning} |`);
