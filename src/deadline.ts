// A deadline that is judged after the event loop has polled for I/O.
//
// Node runs due timers before it polls. When the loop stalls (a busy machine, a long GC) past a
// deadline, the timer runs first and would call a connect or an accept that completed during the
// stall a timeout. A Deadline waits one more turn (setImmediate runs after the poll), so the
// I/O that already happened is seen first and cancels it.

export class Deadline {
  #timer: NodeJS.Timeout | null
  #turn: NodeJS.Immediate | null = null

  constructor(ms: number, onExpire: () => void) {
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.#turn = setImmediate(() => {
        this.#turn = null
        onExpire()
      })
    }, ms)
  }

  /** Stops the deadline; onExpire will not run. Safe to call more than once. */
  cancel(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    if (this.#turn !== null) clearImmediate(this.#turn)
    this.#timer = null
    this.#turn = null
  }
}
