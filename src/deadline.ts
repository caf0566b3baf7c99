// A deadline that counts time the process could act in, judged after the event loop has polled.
//
// Node runs due timers before it polls. When the loop stalls (a busy machine, a long GC, a
// module compiled on first use) past a deadline, the timer runs first and would call a connect
// or an accept that completed during the stall, or that the stalled process could not even
// start, a timeout. A Deadline whose timer fires late (the loop was stalled) grants the full
// time once more; one on time waits one more turn (setImmediate runs after the poll), so I/O
// that already happened is seen first and cancels it.

// A timer this much later than due means the loop was stalled, not that the peer was slow.
const STALL_MS = 100

export class Deadline {
  readonly #ms: number
  readonly #onExpire: () => void
  #timer: NodeJS.Timeout | null = null
  #turn: NodeJS.Immediate | null = null
  #extended = false

  constructor(ms: number, onExpire: () => void) {
    this.#ms = ms
    this.#onExpire = onExpire
    this.#arm()
  }

  #arm(): void {
    const due = performance.now() + this.#ms
    this.#timer = setTimeout(() => {
      this.#timer = null
      if (!this.#extended && performance.now() - due > STALL_MS) {
        this.#extended = true
        this.#arm()
        return
      }
      this.#turn = setImmediate(() => {
        this.#turn = null
        this.#onExpire()
      })
    }, this.#ms)
  }

  /** Stops the deadline; onExpire will not run. Safe to call more than once. */
  cancel(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    if (this.#turn !== null) clearImmediate(this.#turn)
    this.#timer = null
    this.#turn = null
  }
}
