// The proxy process keeps V8's young generation at its starting size (src/young-generation.ts),
// unless the operator sized it with a node flag. Runs the built program (npm test builds first):
// a probe loaded before dist/main.js allocates short-lived objects once the proxy has started, as
// a busy proxy does, and prints the size of V8's new space.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { operatorSizedYoungGeneration } from '../src/young-generation.js'

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))
if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build first`)

const MiB = 1024 * 1024

// 2 s after start: 2 million objects, at most 20,000 alive at once, then the new space's size and exit.
const PROBE = `
import v8 from 'node:v8'
setTimeout(() => {
  let keep = []
  for (let i = 0; i < 2e6; i++) { keep.push({ a: i, b: 'x' + i }); if (keep.length > 20000) keep = [] }
  const s = v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space')
  process.stderr.write('new-space ' + s.space_size + '\\n')
  process.exit(0)
}, 2000)
`

/** The proxy's new space after the probe's allocations, in bytes. */
function newSpaceAfterLoad(nodeArgs: string[], env: Record<string, string> = {}): number {
  // Through `env -i`: under tap, @tapjs/processinfo puts its NODE_OPTIONS loader into every child's
  // environment, whose start-up would grow the new space before the proxy's first line runs.
  const vars = Object.entries({ PATH: process.env['PATH'] ?? '', ...env }).map(([k, v]) => `${k}=${v}`)
  const proxy = [...nodeArgs, `--import=data:text/javascript,${encodeURIComponent(PROBE)}`, MAIN, '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--upstream', '127.0.0.1:21', '--log-level', 'warn']
  const r = spawnSync('/usr/bin/env', ['-i', ...vars, process.execPath, ...proxy], { encoding: 'utf8', timeout: 60_000 })
  const m = /new-space (\d+)/.exec(r.stderr)
  if (m === null) throw new Error(`no reading from the proxy (exit ${r.status}): ${r.stderr.slice(0, 500)}`)
  return Number(m[1])
}

t.test('the proxy keeps its young generation at the starting size under allocation', async (t) => {
  const pinned = newSpaceAfterLoad([])
  t.ok(pinned <= 2 * MiB, `new space ${(pinned / MiB).toFixed(1)} MiB (at most 2 MiB)`)
  // The same load without the pin grows it (what the pin prevents): V8's default, set back by the
  // operator's own flag.
  const grown = newSpaceAfterLoad(['--semi-space-growth-factor=2'])
  t.ok(grown >= 8 * MiB, `with --semi-space-growth-factor=2 from the operator it grows: ${(grown / MiB).toFixed(1)} MiB`)
})

t.test("an operator's young-generation flag is left as given", async (t) => {
  const viaArgv = newSpaceAfterLoad(['--max-semi-space-size=4'])
  t.ok(viaArgv > 2 * MiB && viaArgv <= 8 * MiB, `node --max-semi-space-size=4: new space ${(viaArgv / MiB).toFixed(1)} MiB (grown, at most 2 x 4 MiB)`)
  const viaEnv = newSpaceAfterLoad([], { NODE_OPTIONS: '--max-semi-space-size=4' })
  t.ok(viaEnv > 2 * MiB && viaEnv <= 8 * MiB, `NODE_OPTIONS=--max-semi-space-size=4: new space ${(viaEnv / MiB).toFixed(1)} MiB`)
})

t.test('which node flags count as the operator sizing the young generation', async (t) => {
  const table: Array<[string[], string, boolean]> = [
    [[], '', false],
    [['--expose-gc'], '--max-old-space-size=512', false],
    [['--max-semi-space-size=64'], '', true],
    [['--max_semi_space_size=64'], '', true],
    [['--min-semi-space-size', '8'], '', true],
    [[], '--enable-source-maps  --max-semi-space-size=32', true],
    [['--semi-space-growth-factor=4'], '', true],
    [[], '--max-semi-space-sizes=1', false],
  ]
  for (const [argv, env, want] of table) t.equal(operatorSizedYoungGeneration(argv, env), want, `${JSON.stringify(argv)} NODE_OPTIONS=${JSON.stringify(env)}`)
})
