// V8's young generation in the proxy process grows to 4 MiB semi-spaces at most (8 MiB of new
// space), not V8's 16 MiB (32 MiB), unless the operator sized it with a node flag.
//
// V8 doubles the young generation under allocation pressure, from 1 MiB semi-spaces, and gives it
// back only once the process has allocated almost nothing for a while. For a relay, the top of
// that range is RSS an operator sees and little gained: after a 60 s hostile fuzz the young
// generation was still at its largest in 2 of 10 runs (RSS 38-40 MiB over the start with 4 MiB
// retained). Kept at its start (1 MiB), it cost up to a quarter more CPU on reply-heavy sessions,
// and under a command flood beside 2,000 idle sessions it promoted garbage into the old generation
// (old space 80-109 MiB against 31, peak RSS 140-169 MiB against 123); at 4 MiB neither (old space
// 32 MiB, peak RSS 95 MiB). BENCHMARKS.md, "Young generation", has the runs.
//
// V8 reads `--max-semi-space-size` once, when the heap is made, so a program cannot set it for
// itself; `--semi-space-growth-factor` it reads at each growth. So the proxy lets V8 grow the
// young generation as it would, watches it after each collection (perf_hooks 'gc' entries), and
// sets the growth factor to 1 once the new space has reached the cap: the growth after that needs
// several more collections' worth of survivors, and each collection is seen before it.
import { PerformanceObserver } from 'node:perf_hooks'
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8'
import type { Worker } from 'node:worker_threads'

/** The new space the proxy lets V8 grow to: two semi-spaces of 4 MiB. */
export const NEW_SPACE_CAP_BYTES = 8 * 1024 * 1024

/** The node flags by which an operator sizes the young generation; any of them leaves it to them. */
const OPERATOR_FLAGS = ['max-semi-space-size', 'min-semi-space-size', 'semi-space-growth-factor']

/**
 * Whether the operator passed a young-generation flag to node (execArgv) or in NODE_OPTIONS. Node
 * takes one dash or two, `_` for `-` in V8 flag names, and quotes in NODE_OPTIONS.
 */
export function operatorSizedYoungGeneration(execArgv: readonly string[], nodeOptions: string): boolean {
  const args = [...execArgv, ...nodeOptions.split(/\s+/)]
  return args.some((arg) => {
    const name = arg.replace(/^["']+/, '').split('=')[0]!.replace(/^-{1,2}/, '').replaceAll('_', '-')
    return OPERATOR_FLAGS.includes(name)
  })
}

/** The size of V8's new space now (both semi-spaces), bytes. */
export function newSpaceBytes(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0
}

export interface YoungGenerationCap {
  /** Stops watching (tests); the growth factor stays as it was last set. */
  stop(): void
}

/**
 * Caps the young generation at `capBytes` of new space from now on; null (and nothing watched or
 * set) when the operator sized it with a node flag.
 */
export function capYoungGeneration(
  opts: { readonly execArgv?: readonly string[]; readonly nodeOptions?: string; readonly capBytes?: number } = {},
): YoungGenerationCap | null {
  if (operatorSizedYoungGeneration(opts.execArgv ?? process.execArgv, opts.nodeOptions ?? process.env['NODE_OPTIONS'] ?? '')) return null
  const cap = opts.capBytes ?? NEW_SPACE_CAP_BYTES
  // Set again after every collection at the cap (a few microseconds): the flag is process-wide,
  // and a worker thread's new isolate sets it back to V8's own.
  const check = (): void => {
    if (newSpaceBytes() >= cap) setFlagsFromString('--semi-space-growth-factor=1')
  }
  const observer = new PerformanceObserver(check)
  observer.observe({ entryTypes: ['gc'] })
  const onWorker = (worker: Worker): void => {
    worker.once('online', check)
  }
  process.on('worker', onWorker)
  check()
  return {
    stop: () => {
      observer.disconnect()
      process.off('worker', onWorker)
    },
  }
}
