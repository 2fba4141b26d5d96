/**
 * `muxpool/testing`: helpers for tests of code that uses muxpool, kept apart from the API.
 * `ManualClock` makes time pass without sleeping (pass it as the pool's `clock`); `statsNow`
 * reads a pool's stats synchronously, for polling.
 */
export { ManualClock } from './core/clock.js';
export { statsNow } from './client/pool.js';
