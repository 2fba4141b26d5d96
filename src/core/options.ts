/** Count options (connections, streams, retries, bytes): whole numbers with a floor. */
import { MuxpoolError } from '../errors.js';

/**
 * Validates the count option `name`: `value`, or `fallback` when undefined. A whole number of at
 * least `min`; `Infinity` only where `allowInfinity` says "no limit" makes sense.
 */
export function countOption(name: string, value: unknown, fallback: number, min: number, allowInfinity = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(Number.isInteger(value) || (allowInfinity && value === Infinity)) || value < min) {
    throw new MuxpoolError(
      'MUXPOOL_ERR_INVALID_ARGUMENT',
      `${name} must be a whole number ≥ ${min}${allowInfinity ? ' (or Infinity)' : ''}, got ${typeof value === 'number' ? value : typeof value}`,
    );
  }
  return value;
}
