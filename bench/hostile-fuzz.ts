// Hostile-peer fuzz, the long run (issue 8, "What must show it" 2: a 10-minute run is a benchmark).
// The same fuzzer as test/faults/hostile-fuzz.test.ts (test/fixtures/hostile/), for longer: the
// built proxy as its own process in front of a seeded hostile FTP server, N concurrent hostile
// client sessions, then every peer closed and the checks: the process never exited, its memory
// (read after a GC in the proxy) grew by little (retained heap and Buffers < 16 MiB, RSS < 64
// MiB), sessions, pool ports and file descriptors are back where they started, and a fresh
// session still downloads byte for byte.
//
//   npm run build
//   node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/hostile-fuzz.ts
//       [--seconds 600] [--seed N] [--concurrency 12] [--proxy-root DIR] [--max-line 512|1024|8192]
//       [--sessions A-B --check-each] [--max-session-seconds 12] [--exclude NAME,...] [--json FILE]
//       [--proxy-log FILE] [--log-level debug]
//
// The seed is printed first; without --seed (or FUZZ_SEED) a new one is drawn, so each long run
// explores new sessions and any finding can be replayed: the same seed gives the same sessions.
// Timing between concurrent sessions is the machine's; to find which session of a seed holds
// something, replay its sessions one at a time with a check after each:
//   ... bench/hostile-fuzz.ts --seed N --concurrency 1 --sessions 0-199 --check-each
// --proxy-root runs another checkout's dist/main.js (e.g. the commit before a fix); --exclude
// leaves out behaviours by name (e.g. --exclude cap-overflow,greeting:cap-overflow to look past
// issue 8's finding 1, which ends such a build within a minute).
//
// Exit 0 when every check holds, 1 otherwise. Ports: pool 27170-27199 (the test uses
// 27100-27169); everything else on port 0.
import { randomInt } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { formatReport, runFuzz } from '../test/fixtures/hostile/fuzz.js'
import { parseSeed } from '../test/fixtures/hostile/prng.js'
import { runIfMain } from './lib.js'

function parseRange(text: string): number[] {
  const out: number[] = []
  for (const part of text.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim())
    if (m === null) throw new Error(`--sessions: "${part}" is not N or A-B`)
    const a = Number(m[1])
    const b = m[2] === undefined ? a : Number(m[2])
    for (let i = a; i <= b && out.length < 100_000; i++) out.push(i)
  }
  return out
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: process.env['FUZZ_SECONDS'] ?? '600' },
      seed: { type: 'string' },
      concurrency: { type: 'string', default: '12' },
      'proxy-root': { type: 'string' },
      'max-line': { type: 'string' },
      sessions: { type: 'string' },
      'max-session-seconds': { type: 'string', default: '12' },
      'check-each': { type: 'boolean', default: false },
      exclude: { type: 'string' },
      json: { type: 'string' },
      'proxy-log': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) {
    process.stdout.write('bench/hostile-fuzz.ts [--seconds 600] [--seed N] [--concurrency 12] [--proxy-root DIR] [--max-line N] [--sessions A-B --check-each] [--max-session-seconds 12] [--exclude NAME,...] [--json FILE] [--proxy-log FILE] [--log-level debug]\n')
    return 0
  }
  const seedText = values.seed ?? process.env['FUZZ_SEED']
  const seed = seedText === undefined ? randomInt(0, 2 ** 32) : parseSeed(seedText)
  const seconds = Number(values.seconds)
  const concurrency = Number(values.concurrency)
  if (!(seconds > 0) || !(concurrency >= 1)) throw new Error('--seconds and --concurrency must be positive numbers')
  const started = new Date().toISOString()
  process.stdout.write(`hostile fuzz bench: seed ${seed} (replay with --seed ${seed}), started ${started}, load ${readLoad()}\n`)
  const report = await runFuzz({
    seed,
    seconds,
    concurrency,
    pool: { min: 27170, max: 27199 },
    ...(values['proxy-root'] === undefined ? {} : { root: values['proxy-root'] }),
    ...(values['max-line'] === undefined ? {} : { maxLine: Number(values['max-line']) }),
    ...(values.sessions === undefined ? {} : { sessions: parseRange(values.sessions) }),
    maxSessionMs: Number(values['max-session-seconds']) * 1000,
    checkEach: values['check-each'],
    ...(values['proxy-log'] === undefined ? {} : { logFile: values['proxy-log'] }),
    logLevel: logLevel(values['log-level']),
    ...(values.exclude === undefined ? {} : { exclude: values.exclude.split(',').map((x) => x.trim()) }),
    log: (l) => process.stdout.write(`${l}\n`),
  })
  process.stdout.write(`\n${formatReport(report)}\nload at the end ${readLoad()}\n`)
  if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify({ started, ...report }, null, 2)}\n`)
  return report.ok ? 0 : 1
}

function logLevel(text: string): 'info' | 'debug' | 'trace' {
  if (text === 'info' || text === 'debug' || text === 'trace') return text
  throw new Error(`--log-level: ${text} is not info, debug or trace (the start-up lines are at info)`)
}

/** /proc/loadavg's 1, 5 and 15 min figures: other work on the machine during the run. */
function readLoad(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
  } catch {
    return '?'
  }
}

runIfMain(import.meta.url, main)
