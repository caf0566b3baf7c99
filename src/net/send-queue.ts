// How many bytes a socket's kernel send queue still holds: Node cannot see it (a socket's
// writableFinished says only that the kernel took every byte), but Linux lists it as the
// tx_queue column of /proc/net/tcp and /proc/net/tcp6. A finished download may still be on its
// way to a slow client for seconds; this tells a slow reader that drains from a dead one.
//
// One shared poller reads both files once per interval for every socket being watched, so a
// thousand watched sockets cost one read, not a thousand.

import { readFile } from 'node:fs/promises'

type Watcher = (queued: number | null) => void

/** A TCP connection by its two ports: it stays in /proc/net/tcp after its descriptor is closed. */
export interface PortPair {
  readonly localPort: number
  readonly remotePort: number
}

const watchers = new Map<object, { readonly key: string; readonly onQueue: Watcher }>()
let timer: NodeJS.Timeout | null = null
let polling = false
const POLL_MS = 500

/**
 * Calls `onQueue` about twice a second with the bytes the kernel still holds for the connection
 * (null where /proc/net/tcp is not available, or the connection is no longer listed), until the
 * returned function is called. The descriptor may be closed already: the kernel goes on
 * sending what it holds (no SO_LINGER), and lists the connection until it is done.
 */
export function watchSendQueue(ports: PortPair, onQueue: Watcher): () => void {
  const handle = {}
  watchers.set(handle, { key: `${hexPort(ports.localPort)}:${hexPort(ports.remotePort)}`, onQueue })
  const stop = (): void => {
    watchers.delete(handle)
    if (watchers.size === 0 && timer !== null) {
      clearInterval(timer)
      timer = null
    }
  }
  if (timer === null) {
    timer = setInterval(() => void poll(), POLL_MS)
    timer.unref()
  }
  return stop
}

async function poll(): Promise<void> {
  if (polling) return
  polling = true
  try {
    const queues = new Map<string, number>()
    for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
      let text: string
      try {
        text = await readFile(file, 'latin1')
      } catch {
        continue
      }
      parseInto(text, queues)
    }
    for (const { key, onQueue } of [...watchers.values()]) onQueue(queues.size === 0 ? null : (queues.get(key) ?? null))
  } finally {
    polling = false
  }
}

// `  sl  local_address rem_address   st tx_queue:rx_queue ...`, addresses as HEXADDR:HEXPORT.
function parseInto(text: string, queues: Map<string, number>): void {
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/)
    const local = f[1]
    const remote = f[2]
    const tx = f[4]
    if (local === undefined || remote === undefined || tx === undefined || !tx.includes(':')) continue
    const lp = local.slice(local.lastIndexOf(':') + 1)
    const rp = remote.slice(remote.lastIndexOf(':') + 1)
    const bytes = Number.parseInt(tx.slice(0, tx.indexOf(':')), 16)
    if (Number.isNaN(bytes)) continue
    const key = `${lp}:${rp}`
    // Two sockets may share the port pair (a listener's, another namespace's): the larger wins.
    queues.set(key, Math.max(bytes, queues.get(key) ?? 0))
  }
}

function hexPort(port: number | undefined): string {
  return (port ?? 0).toString(16).toUpperCase().padStart(4, '0')
}
