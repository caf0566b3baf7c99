// The AUTH TLS exchanges of one session (RFC 4217), in the order of its commands: the client's
// AUTH TLS answered once the server's TLS is on (under --upstream-tls mirror) or at once; under
// required, the server's TLS right after its greeting; then the proxy's own PBSZ 0 and PROT P
// toward the server. The upgrades themselves (the leg swaps and handshakes) are session-tls.ts's.

import type { Logger } from 'pino'
import { tlsHintFor } from './hints.js'
import type { Expect, ReplyOrder, Slot } from './reply-order.js'
import type { SessionTls } from './session-tls.js'

// The client's 234, whether the proxy answers at once or once the server's TLS is on.
const AUTH_OK = Buffer.from('234 AUTH TLS successful; go ahead with the TLS handshake.\r\n')

export interface TlsConversationDeps {
  readonly log: Logger
  readonly replies: ReplyOrder
  /** Sends the server a command whose reply fills a new slot. */
  readonly forward: (expect: Expect, bytes: Buffer) => Slot
  /** Ends the session with a final reply to the client. */
  readonly closeWith: (reply: string, reason: string) => void
  /** Calls `fn` once what was handed to the client's writer has gone to the kernel. */
  readonly afterClientFlush: (fn: () => void) => void
}

export class TlsConversation {
  readonly #tls: SessionTls
  readonly #deps: TlsConversationDeps

  constructor(tls: SessionTls, deps: TlsConversationDeps) {
    this.#tls = tls
    this.#deps = deps
  }

  /**
   * AUTH TLS from the client. Under --upstream-tls mirror the server's TLS comes first (its
   * reply, serverAuthReply, decides what the client gets); otherwise the proxy answers 234
   * itself. Once the 234 has gone out in clear, the client's leg becomes TLS. Nothing the
   * client sends meanwhile is taken as a command.
   */
  auth(): Promise<void> {
    const tls = this.#tls
    return new Promise<void>((resolve) => {
      let slot: Slot
      if (tls.serverFirst) {
        slot = this.#deps.forward({ type: 'auth', secured: false }, Buffer.from('AUTH TLS\r\n'))
      } else {
        slot = this.#deps.replies.own({ type: 'local' }, AUTH_OK)
      }
      slot.onSent = () => {
        const e = slot.expect
        if (e.type === 'auth' && !e.secured) return resolve()
        this.#deps.afterClientFlush(() => {
          tls.secureClient().then(resolve, (err: unknown) => {
            this.#deps.log.warn({ error: (err as Error).message, hint: tlsHintFor('client', err as Error) }, 'TLS handshake with the client failed; closing')
            resolve()
          })
        })
      }
    })
  }

  /** The server's reply to the proxy's AUTH TLS made for the client's (under mirror). */
  serverAuthReply(slot: Slot, code: number): void {
    const e = slot.expect
    if (e.type !== 'auth') return
    if (code !== 234) {
      // A client that asked for TLS is never carried on in clear to a server without it.
      this.#deps.log.warn({ code }, 'the FTP server refused AUTH TLS; the client is refused TLS (--upstream-tls mirror)')
      return this.#deps.replies.finish(slot, [Buffer.from(`534 The FTP server behind this proxy does not offer TLS (it answered ${code} to AUTH TLS); use --upstream-tls off on the proxy to carry TLS clients to a clear server.\r\n`)])
    }
    this.#deps.replies.later(slot, async () => {
      if (!(await this.#secureServer())) return []
      e.secured = true
      return [AUTH_OK]
    }, [])
  }

  /** The server's TLS was to come after its greeting, which is other than 220: the session ends; nothing goes in clear. */
  async refuseGreeting(code: number): Promise<boolean> {
    this.#deps.log.warn({ code }, 'the FTP server greeted with other than 220 where its TLS was to follow; closing')
    this.#deps.closeWith(`421 The FTP server greeted with ${code}, not 220, and this proxy speaks to it only over TLS; closing.\r\n`, 'server greeting not 220')
    return Promise.resolve(false)
  }

  /**
   * An implicit FTPS client: its leg is TLS from the first byte (the greeting waits in the TLS
   * socket until the handshake is done). A failed handshake closes the session: nothing can be
   * said to a client whose TLS did not come up.
   */
  async implicitClient(): Promise<void> {
    try {
      await this.#tls.secureClient()
    } catch (err) {
      this.#deps.log.warn({ error: (err as Error).message, hint: tlsHintFor('client', err as Error) }, 'TLS handshake with the implicit FTPS client failed; closing')
    }
  }

  /** --upstream-tls implicit: the server's leg is TLS from the first byte, its greeting read over it; false if the session ends. */
  implicitServer(): Promise<boolean> {
    return this.#handshakeServer()
  }

  /**
   * Right after the server's greeting, where its TLS comes before any command (--upstream-tls
   * required, an implicit FTPS client under mirror): AUTH TLS then the handshake; under
   * --upstream-tls implicit, TLS is on already and only its data protection is set. False if
   * the session ends.
   */
  async secureServerFirst(): Promise<boolean> {
    if (this.#tls.serverSecure) {
      this.#protectServerData()
      return true
    }
    const answered = new Promise<number>((resolve) => {
      const slot = this.#deps.forward({ type: 'internal', onReply: resolve }, Buffer.from('AUTH TLS\r\n'))
      // A server that leaves without answering: the slot is done with no reply (after a reply,
      // this -1 comes second and changes nothing).
      slot.onDone = () => resolve(-1)
    })
    const code = await answered
    if (code !== 234) {
      // Under required, or under mirror for a client that came with TLS (implicit FTPS).
      const why = this.#tls.clientSecure ? 'your connection is TLS and this proxy never carries it on in clear' : 'this proxy requires it (--upstream-tls required)'
      this.#deps.log.warn({ code }, 'the FTP server refused AUTH TLS, which this session requires; closing')
      this.#deps.closeWith(`421 The FTP server refused TLS (it answered ${code} to AUTH TLS) and ${why}; closing.\r\n`, 'server refused TLS')
      return false
    }
    return this.#secureServer()
  }

  /**
   * The server's control leg becomes TLS, then its data protection is set (PBSZ 0, PROT P: data
   * connections to the server are TLS, as vsftpd's force_*_data_ssl demands). False, with the
   * session ending, when the handshake fails.
   */
  async #secureServer(): Promise<boolean> {
    if (!(await this.#handshakeServer())) return false
    this.#protectServerData()
    return true
  }

  /** The server's control leg becomes TLS; false, with the session ending, when the handshake fails. */
  async #handshakeServer(): Promise<boolean> {
    try {
      await this.#tls.secureServer()
      return true
    } catch (err) {
      const message = (err as Error).message
      this.#deps.log.warn({ error: message, hint: tlsHintFor('server', err as Error) }, 'TLS handshake with the FTP server failed; closing')
      // OpenSSL's text has line ends and more: one printable line of it goes in the reply.
      const said = message.replace(/[^\x20-\x7e]+/g, ' ').trim().slice(0, 200)
      this.#deps.closeWith(`421 TLS handshake with the FTP server failed (${said}); closing.\r\n`, 'server TLS failed')
      return false
    }
  }

  /** PBSZ 0 and PROT P toward the server, whose replies are the proxy's own. */
  #protectServerData(): void {
    // A server that refuses either would take protected data in clear: the session ends instead.
    const protect = (verb: string) => (code: number) => {
      if (code >= 200 && code < 300) {
        if (verb === 'PROT P') this.#tls.serverProt = 'P'
        return
      }
      this.#deps.log.warn({ code, cmd: verb }, 'the FTP server refused data protection; closing')
      this.#deps.closeWith(`421 The FTP server refused ${verb} (${code}): this proxy does not carry protected data in clear; closing.\r\n`, 'server refused data protection')
    }
    this.#deps.forward({ type: 'internal', onReply: protect('PBSZ 0') }, Buffer.from('PBSZ 0\r\n'))
    this.#deps.forward({ type: 'internal', onReply: protect('PROT P') }, Buffer.from('PROT P\r\n'))
  }
}
