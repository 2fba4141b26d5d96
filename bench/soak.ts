/**
 * soak — one pool, HTTP/1.1, HTTP/2 and HTTP/3 mixed, against the embedded server in another
 * process, with aborts, short deadlines, dropped bodies, GOAWAYs and restarts; bounded by count
 * and time. Prints what settled as asked, what did not (by protocol, kind and code), what was
 * lost, heap and RSS over time and the handles left. Exit status 1 when a target is missed
 * (anything lost or unexpected, heap growth of 5 MB or more, a handle left). Usage:
 *   npm run soak -- [--requests N] [--seconds S] [--concurrency C] [--seed X]
 *                   [--goaway-every S] [--restart-every S] [--sample-every S] [--warmup S]
 *                   [--protocols h1,h2,h3] [--exclude KIND,…] [--no-kill] [--no-track-handles] [--json FILE]
 * (`npm run soak` runs node with --expose-gc, so samples follow a forced GC.)
 */
import { writeFileSync } from 'node:fs';
import { KINDS, type Protocol, formatReport, runSoak, type SoakOptions } from '../test/helpers/soak.js';

const USAGE =
  'usage: soak [--requests N] [--seconds S] [--concurrency C] [--seed X] [--goaway-every S] [--restart-every S] [--sample-every S] [--warmup S] [--protocols h1,h2,h3] [--exclude KIND,…] [--no-kill] [--no-track-handles] [--json FILE]';

function parse(argv: string[]): SoakOptions & { json?: string } {
  const options: SoakOptions & { json?: string } = { requests: 1_000_000, seconds: 3_600 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--no-track-handles') {
      options.trackHandles = false;
      continue;
    }
    if (flag === '--no-kill') {
      options.restartByKill = false;
      continue;
    }
    const value = argv[++i];
    if (value === undefined) throw new Error(`${flag ?? ''} needs a value\n${USAGE}`);
    const number = Number(value);
    const needNumber = (): number => {
      if (!Number.isFinite(number) || number < 0) throw new Error(`${flag ?? ''}: not a number: ${value}\n${USAGE}`);
      return number;
    };
    switch (flag) {
      case '--requests':
        options.requests = needNumber();
        break;
      case '--seconds':
        options.seconds = needNumber();
        break;
      case '--concurrency':
        options.concurrency = Math.max(1, needNumber());
        break;
      case '--seed':
        options.seed = needNumber();
        break;
      case '--goaway-every':
        options.goawayEveryMs = needNumber() * 1000;
        break;
      case '--restart-every':
        options.restartEveryMs = needNumber() * 1000;
        break;
      case '--sample-every':
        options.sampleEveryMs = needNumber() * 1000;
        break;
      case '--warmup':
        options.warmupMs = needNumber() * 1000;
        break;
      case '--exclude':
        options.exclude = value.split(',');
        for (const kind of options.exclude) if (!KINDS.includes(kind)) throw new Error(`--exclude: unknown kind ${kind} (kinds: ${KINDS.join(', ')})`);
        break;
      case '--protocols': {
        const protocols = value.split(',');
        for (const protocol of protocols) if (protocol !== 'h1' && protocol !== 'h2' && protocol !== 'h3') throw new Error(`--protocols: h1, h2 or h3, not ${protocol}`);
        options.protocols = protocols as Protocol[];
        break;
      }
      case '--json':
        options.json = value;
        break;
      default:
        throw new Error(`unknown option ${flag ?? ''}\n${USAGE}`);
    }
  }
  return options;
}

const options = parse(process.argv.slice(2));
const report = await runSoak({ ...options, log: (line) => console.log(line) });
console.log(formatReport(report));
if (options.json !== undefined) writeFileSync(options.json, JSON.stringify(report, null, 2));

const handlesLeft = Object.keys(report.activeHandlesLeft).length + Object.keys(report.trackedHandlesLeft ?? {}).length;
const missed = report.lostTotal > 0 || report.unexpectedTotal > 0 || (report.heapGrowthMB ?? 0) >= 5 || handlesLeft > 0 || report.closeHung;
process.exitCode = missed ? 1 : 0;
