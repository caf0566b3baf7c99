// The commands the proxy answers itself with a refusal: each counted by reason, the first of
// each reason logged at info and the rest at debug (a client repeating one must not set the log
// volume), and a run of refusals with nothing forwarded between them bounded
// (SessionLimits.maxRefusedInRow): a client that sends only what the proxy refuses is closed.

import type { Logger } from 'pino'
import { logSafe, type Command } from '../protocol/commands.js'
import type { ProxyMetrics } from '../observe/metrics.js'
import type { CommandRefusal } from './outcomes.js'

export class Refusals {
  readonly #metrics: ProxyMetrics
  readonly #log: Logger
  readonly #maxInRow: number
  /** Reasons already logged at info in this session. */
  readonly #logged = new Set<CommandRefusal>()
  #inRow = 0

  constructor(metrics: ProxyMetrics, log: Logger, maxInRow: number) {
    this.#metrics = metrics
    this.#log = log
    this.#maxInRow = maxInRow
  }

  /** How many refusals came in a row. */
  get inRow(): number {
    return this.#inRow
  }

  /** A command was forwarded: the run of refusals is over. */
  forwarded(): void {
    this.#inRow = 0
  }

  /** Counts and logs a refusal; true when the run has reached the limit and the session should end. */
  refused(command: Command, reason: CommandRefusal, reply: string): boolean {
    this.#metrics.commandsRefused.inc({ reason })
    const level = this.#logged.has(reason) ? 'debug' : 'info'
    this.#logged.add(reason)
    if (this.#log.isLevelEnabled(level)) this.#log[level]({ cmd: logSafe(command), reason, reply }, 'command refused')
    return ++this.#inRow >= this.#maxInRow
  }
}
