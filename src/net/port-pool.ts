// A bounded pool of passive data ports. A lease is a listener bound once on a random free port
// of the range and held until release (ftp-srv src/connector/passive.js); a free port is never
// found by listen-close-listen, which races with every other process (ftp-srv issues #98, #312).

import net from 'node:net'
import { ProxyError } from '../errors.js'

export interface PortLease {
  readonly port: number
  /**
   * Hands the port's connections and listener errors to their owner. Until it is called, a
   * connection (a port scanner, say, while the server's data port is still being dialled) is
   * reset at once and an error is dropped: the listener has both handlers before it listens
   * (ftp-srv src/connector/passive.js), so nothing is ever accepted and left unowned.
   */
  accept(onConnection: (socket: net.Socket) => void, onError: (err: Error) => void): void
  /** Closes the listener and returns the port to the pool. Safe to call twice. */
  release(): void
}

export class PortPool {
  readonly min: number
  readonly max: number
  readonly #leased = new Set<number>()
  readonly #onChange: (() => void) | undefined

  constructor(range: { readonly min: number; readonly max: number }, onChange?: () => void) {
    this.min = range.min
    this.max = range.max
    this.#onChange = onChange
  }

  get size(): number {
    return this.max - this.min + 1
  }

  get inUse(): number {
    return this.#leased.size
  }

  /**
   * Binds a listener on a random free port of the range, on `host`. Ports that another process
   * holds (EADDRINUSE) are skipped. Rejects with POOL_EXHAUSTED when no port can be bound.
   */
  async lease(host: string): Promise<PortLease> {
    const free: number[] = []
    for (let p = this.min; p <= this.max; p++) if (!this.#leased.has(p)) free.push(p)
    while (free.length > 0) {
      const i = Math.floor(Math.random() * free.length)
      const port = free[i] as number
      free[i] = free[free.length - 1] as number
      free.pop()
      // A lease taken by a concurrent call since `free` was built.
      if (this.#leased.has(port)) continue
      this.#leased.add(port)
      // maxConnections 1: a pool port carries one data connection; pauseOnConnect: no byte is
      // read before the peer's address is checked.
      let owner: { onConnection: (socket: net.Socket) => void; onError: (err: Error) => void } | null = null
      const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => {
        if (owner === null) {
          socket.on('error', () => {})
          socket.resetAndDestroy()
        } else owner.onConnection(socket)
      })
      server.on('error', (err) => owner?.onError(err))
      server.maxConnections = 1
      try {
        await listen(server, host, port)
      } catch (err) {
        this.#leased.delete(port)
        if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') continue
        throw err
      }
      this.#onChange?.()
      let released = false
      return {
        port,
        accept: (onConnection, onError) => {
          owner = { onConnection, onError }
        },
        release: () => {
          if (released) return
          released = true
          owner = null
          server.close()
          this.#leased.delete(port)
          this.#onChange?.()
        },
      }
    }
    throw new ProxyError('POOL_EXHAUSTED', `no free port in ${this.min}-${this.max}`)
  }
}

function listen(server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err)
    server.once('error', onError)
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', onError)
      resolve()
    })
  })
}
