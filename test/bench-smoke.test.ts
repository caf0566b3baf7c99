// The benchmark's smoke run, so that it cannot rot: `npm run bench`'s entry point (bench/run.ts)
// with tiny sizes (8 MiB, one run, 50 latency tries, 20 concurrent sessions, 200 idle ones), in
// its own process against the built proxy, and its report checked for every section with
// numbers in it. The figures themselves are the benchmark's business (BENCHMARKS.md), not this
// test's: on a shared 2-core machine they say nothing. Under CI=true every peer (haproxy, socat,
// ProFTPD mod_proxy; scripts/test.sh installs them with scripts/bench-deps.sh) must run; elsewhere
// a peer that is not installed is skipped by the bench and here.
// Ports: 28400-28525 (control), 28600-28789 (passive ranges and pools).
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const REPO = fileURLToPath(new URL('../', import.meta.url))
const LOADER = join(REPO, 'node_modules/@tapjs/typescript/dist/esm/import.mjs')
const CI = process.env['CI'] === 'true'
const PEERS = ['mod_proxy', 'haproxy', 'socat']
const RUN_MS = 150_000

t.setTimeout(RUN_MS + 30_000)

/**
 * The bench runs without tap's process-info hook, which NODE_OPTIONS would load into it and into
 * every process it starts (the proxies, the double) to record coverage. The smoke run is there
 * so that the benchmark keeps working, not to test it: the bench's option and error paths, which
 * a working run never takes, would count against the suite's coverage thresholds, and V8's
 * precise coverage would slow the proxies it measures. The hook also re-adds its variables to the
 * environment of anything this process spawns, so `env -u` takes NODE_OPTIONS out one step later.
 */
const WITHOUT_COVERAGE = ['env', '-u', 'NODE_OPTIONS', '-u', 'NODE_V8_COVERAGE']

function runBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const [env, ...unset] = WITHOUT_COVERAGE
    const child = spawn(env!, [...unset, process.execPath, `--import=${LOADER}`, join(REPO, 'bench/run.ts'), ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')))
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')))
    // SIGINT, so that the bench stops what it started (its servers also die with it: setpriv's
    // parent-death signal).
    const timer = setTimeout(() => child.kill('SIGINT'), RUN_MS)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/** The body rows of the markdown table whose header line starts with `header`, split into cells. */
function table(report: string, header: string): string[][] {
  const lines = report.split('\n')
  const at = lines.findIndex((l) => l.startsWith(header))
  if (at === -1) return []
  const rows: string[][] = []
  for (const line of lines.slice(at + 2)) {
    if (!line.startsWith('|')) break
    rows.push(line.slice(1, -1).split('|').map((c) => c.trim()))
  }
  return rows
}

const isNumber = (cell: string | undefined): boolean => cell !== undefined && /^[+-]?\d+(\.\d+)?$/.test(cell)

t.test('npm run bench runs bench/run.ts after its set-up and build', async (t) => {
  const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  const bench = pkg.scripts['bench'] ?? ''
  t.match(bench, /^bash scripts\/bench-deps\.sh && npm run build && node --import=\S+ bench\/run\.ts$/, 'the script the smoke run stands for')
})

t.test('a tiny run of every section prints one report with numbers', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'bench-smoke-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const out = join(dir, 'report.md')
  const r = await runBench([
    '--size', '8M', '--runs', '1', '--latency-tries', '50', '--sessions', '20', '--idle', '200', '--settle-ms', '300',
    '--port-base', '28400', '--pool-base', '28600', '--out', out,
    ...(CI ? ['--require-peers'] : []),
  ])
  t.equal(r.code, 0, 'the bench exits 0', { stderr: r.stderr.slice(-4000) })
  const report = r.stdout
  t.equal(await readFile(out, 'utf8'), report, 'the file holds what stdout printed')
  for (const heading of ['## 1. Throughput', '## 2. PASV sent to data connection established', '## 3. 20 concurrent sessions', '## 4. 200 idle sessions', '## Against the targets of issue 12']) {
    t.ok(report.includes(heading), `section: ${heading}`)
  }
  t.notMatch(report, /The section failed/, 'no section failed')

  const skipped = PEERS.filter((p) => report.includes(`${p} skipped`))
  if (CI) t.same(skipped, [], 'under CI=true every peer runs')
  else if (skipped.length > 0) t.comment(`peers not installed here, skipped: ${skipped.join(', ')} (bash scripts/bench-deps.sh)`)
  const expected = ['direct', 'proxy', 'proxy-pasv', ...PEERS.filter((p) => !skipped.includes(p)), 'node-pipe']
  for (const op of ['RETR', 'STOR']) {
    const rows = table(report, `| ${op} path |`)
    t.same(rows.map((c) => c[0]).sort(), [...expected].sort(), `${op}: a row for every path`)
    for (const [name, , medianMBs, , ratio, cpu] of rows) {
      t.ok(isNumber(medianMBs) && Number(medianMBs) > 0, `${op} ${name}: MB/s ${medianMBs}`)
      t.ok(isNumber(ratio), `${op} ${name}: ratio to direct ${ratio}`)
      // Every relay's CPU, whether one process or a group (socat, proftpd): "s (min-max)".
      if (name !== 'direct') t.match(cpu ?? '', /^\d+\.\d+ \(\d+\.\d+-\d+\.\d+\)$/, `${op} ${name}: relay CPU s per GiB ${cpu}`)
    }
  }

  const latency = table(report, '| path | tries ok |')
  t.equal(latency.length, 3, 'latency: direct, proxy, and the difference')
  for (const [name, tries, p50, p99] of latency.slice(0, 2)) {
    t.equal(tries, '50', `latency ${name}: every try counted`)
    t.ok(isNumber(p50) && isNumber(p99), `latency ${name}: p50 ${p50} ms, p99 ${p99} ms`)
  }

  const [sessions] = table(report, '| sessions | succeeded |')
  t.same(sessions?.slice(0, 4), ['20', '20', '0', '20'], 'sessions: 20 of 20 succeeded, all logged in at once')
  t.ok(isNumber(sessions?.[6]), `sessions: the proxy's CPU s ${sessions?.[6]}`)
  t.match(sessions?.[8] ?? '', /^\d+\.\d \/ \d+\.\d$/, `sessions: the proxy's peak RSS ${sessions?.[8]}`)

  const moments = table(report, '| moment |')
  t.equal(moments.length, 5, 'idle: at rest, then open and closed for each of 2 rounds')
  for (const [moment, , rss, rssGc, fds, heap] of moments) {
    t.ok([rss, rssGc, fds, heap].every(isNumber), `idle ${moment}: RSS ${rss}, after GC ${rssGc}, descriptors ${fds}, heap ${heap}`)
  }
  const perSession = table(report, '| round | opened |')
  t.equal(perSession.length, 2, 'idle: two rounds')
  for (const [round, opened, , , rss, fds, heap] of perSession) {
    t.equal(opened, '200', `idle round ${round}: 200 sessions open`)
    t.match(rss ?? '', /^-?\d+\.\d \/ -?\d+\.\d$/, `idle round ${round}: RSS per session ${rss} KiB`)
    t.ok(isNumber(fds) && isNumber(heap), `idle round ${round}: ${fds} descriptors, ${heap} KiB heap per session`)
  }

  const targets = table(report, '| target |')
  t.ok(targets.length >= 10, `the targets table has a row for each target (${targets.length})`)
  t.ok(targets.every((c) => /^(yes|\*\*no\*\*)$/.test(c[2] ?? '')), 'each target is met or not')
})
