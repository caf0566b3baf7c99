// The proxy process caps V8's young generation at 8 MiB of new space (src/young-generation.ts),
// unless the operator sized it with a node flag. Runs the built program (npm test builds first): a
// probe loaded before dist/main.js allocates short-lived objects once the proxy has started, as a
// busy proxy does, and prints the size of V8's new space.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { capYoungGeneration, NEW_SPACE_CAP_BYTES, newSpaceBytes, operatorSizedYoungGeneration } from '../src/young-generation.js'

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))
if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build first`)

const MiB = 1024 * 1024

// 2 s after start (after a worker thread, when asked: its isolate sets V8's growth factor back):
// 2 million objects, at most 20,000 alive at once, in 40 turns of the event loop, then the new
// space's size and exit.
const probe = (worker: boolean): string => `
import v8 from 'node:v8'
import { Worker } from 'node:worker_threads'
setTimeout(async () => {
  if (${worker}) await new Promise((res) => new Worker('1', { eval: true }).once('exit', res))
  let keep = []
  for (let turn = 0; turn < 40; turn++) {
    for (let i = 0; i < 5e4; i++) { keep.push({ a: i, b: 'x' + i }); if (keep.length > 20000) keep = [] }
    await new Promise((res) => setImmediate(res))
  }
  const s = v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space')
  process.stderr.write('new-space ' + s.space_size + '\\n')
  process.exit(0)
}, 2000)
`

/** The proxy's new space after the probe's allocations, in bytes. */
function newSpaceAfterLoad(nodeArgs: string[], env: Record<string, string> = {}, worker = false): number {
  // Through `env -i`: under tap, @tapjs/processinfo puts its NODE_OPTIONS loader into every child's
  // environment, whose start-up would grow the new space before the proxy's first line runs.
  const vars = Object.entries({ PATH: process.env['PATH'] ?? '', ...env }).map(([k, v]) => `${k}=${v}`)
  const proxy = [...nodeArgs, `--import=data:text/javascript,${encodeURIComponent(probe(worker))}`, MAIN, '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--upstream', '127.0.0.1:21', '--log-level', 'warn']
  const r = spawnSync('/usr/bin/env', ['-i', ...vars, process.execPath, ...proxy], { encoding: 'utf8', timeout: 60_000 })
  const m = /new-space (\d+)/.exec(r.stderr)
  if (m === null) throw new Error(`no reading from the proxy (exit ${r.status}): ${r.stderr.slice(0, 500)}`)
  return Number(m[1])
}

t.test('the proxy caps its young generation under allocation', async (t) => {
  const capped = newSpaceAfterLoad([])
  t.ok(capped <= NEW_SPACE_CAP_BYTES, `new space ${(capped / MiB).toFixed(1)} MiB (at most ${NEW_SPACE_CAP_BYTES / MiB} MiB)`)
  const afterWorker = newSpaceAfterLoad([], {}, true)
  t.ok(afterWorker <= NEW_SPACE_CAP_BYTES, `after a worker thread ran: new space ${(afterWorker / MiB).toFixed(1)} MiB (at most ${NEW_SPACE_CAP_BYTES / MiB} MiB)`)
  // The same load with V8's own sizing, as the operator's flag leaves it: what the cap prevents.
  const grown = newSpaceAfterLoad(['--max-semi-space-size=16'])
  t.ok(grown >= 4 * NEW_SPACE_CAP_BYTES, `with node --max-semi-space-size=16 it grows to ${(grown / MiB).toFixed(1)} MiB`)
})

t.test("an operator's young-generation flag is left as given", async (t) => {
  for (const [args, env] of [
    [['-max-semi-space-size=16'], {}],
    [[], { NODE_OPTIONS: '--max-semi-space-size=16' }],
    [[], { NODE_OPTIONS: '"--max-semi-space-size=16"' }],
  ] as Array<[string[], Record<string, string>]>) {
    const size = newSpaceAfterLoad(args, env)
    t.ok(size > NEW_SPACE_CAP_BYTES, `${JSON.stringify(args)} ${JSON.stringify(env)}: new space ${(size / MiB).toFixed(1)} MiB (grown past the cap)`)
  }
})

t.test('which node flags count as the operator sizing the young generation', async (t) => {
  const table: Array<[string[], string, boolean]> = [
    [[], '', false],
    [['--expose-gc'], '--max-old-space-size=512', false],
    [['--max-semi-space-size=64'], '', true],
    [['--max_semi_space_size=64'], '', true],
    [['-min-semi-space-size=8'], '', true],
    [[], '"--max-semi-space-size=32"', true],
    [[], '--enable-source-maps  --max-semi-space-size=32', true],
    [['--semi-space-growth-factor=4'], '', true],
    [[], '--max-semi-space-sizes=1', false],
  ]
  for (const [argv, env, want] of table) t.equal(operatorSizedYoungGeneration(argv, env), want, `${JSON.stringify(argv)} NODE_OPTIONS=${JSON.stringify(env)}`)
})

t.test('capYoungGeneration watches only when the operator left the sizing to it', async (t) => {
  t.equal(capYoungGeneration({ execArgv: ['--max-semi-space-size=16'], nodeOptions: '' }), null, 'an operator flag: nothing watched or set')
  // In this test process (whose new space tap's loader has already grown: the cap's effect is
  // shown by the spawned proxies above): no operator flag, so it watches until stopped.
  const cap = capYoungGeneration({ execArgv: [], nodeOptions: '' })
  t.not(cap, null, 'no operator flag: watching')
  cap?.stop()
  t.ok(newSpaceBytes() > 0, `newSpaceBytes reads V8's new space (${(newSpaceBytes() / MiB).toFixed(1)} MiB)`)
})
