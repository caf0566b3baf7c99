// V8's young generation stays at its starting size in the proxy process (1 MiB semi-spaces), unless
// the operator sized it with a node flag.
//
// By default V8 doubles the young generation under allocation pressure, up to 16 MiB semi-spaces
// (tens of MiB of RSS), and gives it back only once the process has allocated almost nothing for
// a while. For a relay that is RSS an operator sees and nothing gains: after a 60 s hostile fuzz
// the young generation was still at its largest in 2 of 10 runs (RSS 38-40 MiB over the start
// with 4 MiB retained), and 1,000 concurrent sessions peaked at 329 MiB of RSS with it, 282
// without. The proxy's objects live either for one callback or for a whole
// session, so a small nursery costs it no measurable CPU (BENCHMARKS.md, "Young generation").
//
// `--semi-space-growth-factor` is the one young-generation flag V8 still reads after start-up (at
// each growth); `--max-semi-space-size` is read once, when the heap is made. This module is the
// first import of main.ts, so the flag is set before the modules and sessions that allocate.
import { setFlagsFromString } from 'node:v8'

/** The node flags by which an operator sizes the young generation; any of them leaves it to them. */
const OPERATOR_FLAGS = ['--max-semi-space-size', '--min-semi-space-size', '--semi-space-growth-factor']

/**
 * Whether the operator passed a young-generation flag, to node (execArgv) or in NODE_OPTIONS.
 * V8 accepts `_` for `-` in flag names.
 */
export function operatorSizedYoungGeneration(execArgv: readonly string[], nodeOptions: string): boolean {
  const args = [...execArgv, ...nodeOptions.split(/\s+/)]
  return args.some((arg) => {
    const name = arg.split('=')[0]!.replaceAll('_', '-')
    return OPERATOR_FLAGS.includes(name)
  })
}

/** Keeps the young generation at its starting size; false (and nothing set) when the operator sized it. */
export function pinYoungGeneration(execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env['NODE_OPTIONS'] ?? ''): boolean {
  if (operatorSizedYoungGeneration(execArgv, nodeOptions)) return false
  setFlagsFromString('--semi-space-growth-factor=1')
  return true
}

pinYoungGeneration()
