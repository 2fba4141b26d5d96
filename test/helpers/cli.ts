/**
 * Running a program, above all the `muxpool` command, as a child process for a test: what the
 * CLI tests share. The outcome is the exit code (1 when the process was killed or failed to
 * start) and everything it printed; the run is bounded by `timeout` (30 s unless given).
 */
import { type ExecFileOptions, execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built CLI entry point. */
export const CLI_MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface RunOutcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `file` with `args` until it exits; never rejects. */
export function runProgram(file: string, args: readonly string[], options: ExecFileOptions = {}): Promise<RunOutcome> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 30_000, ...options }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Runs `muxpool ARGS` with this Node until it exits; never rejects. */
export function runCli(args: readonly string[], options: ExecFileOptions = {}): Promise<RunOutcome> {
  return runProgram(process.execPath, [CLI_MAIN, ...args], options);
}
