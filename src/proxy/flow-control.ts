// Flow control of a control session, in one place: the client is read only while another
// command can be taken (few unanswered, no setup under way, both writers flowing), the server
// only while the client reads its replies, or while the next reply due to the client is the
// server's to give. What a peer sends beyond that waits in the kernel, not in the proxy.

import type { ControlLeg } from './control-leg.js'
import type { Conversation } from './conversation.js'
import type { Lifecycle } from './lifecycle.js'
import type { ReplyOrder } from './reply-order.js'
import type { SessionLimits } from './session-context.js'

export interface FlowParts {
  readonly life: Lifecycle
  readonly client: ControlLeg
  readonly server: ControlLeg
  readonly replies: ReplyOrder
  readonly conversation: Conversation
  readonly limits: SessionLimits
}

export class FlowControl {
  readonly #parts: FlowParts

  constructor(parts: FlowParts) {
    this.#parts = parts
  }

  /** Whether another command can be handled now without buffering more than the limits allow. */
  canTakeCommand(): boolean {
    const { life, client, server, replies, conversation, limits } = this.#parts
    return (
      life.phase === 'open' &&
      !conversation.busy &&
      replies.pending < limits.maxPendingCommands &&
      !client.writer.backedUp &&
      !server.writer.backedUp
    )
  }

  /** Whether another server line can be taken now: the client reads, or the line is the one due. */
  canTakeReply(): boolean {
    const { life, client, replies, limits } = this.#parts
    return life.phase === 'open' && !client.writer.backedUp && (replies.held < limits.maxHeldReplyBytes || replies.headAwaitsServer)
  }

  /**
   * Reads each leg or not, by the rules above; once the session is ending, the client is read
   * to drop its bytes and see its FIN.
   */
  apply(): void {
    const { life, client, server, conversation } = this.#parts
    const phase = life.phase
    if (phase === 'closed') return
    // A leg in its TLS handshake is read: the handshake needs the peer's bytes to go on.
    const readClient = phase !== 'open' || conversation.tls.handshaking('client') || (!client.lines.waiting && this.canTakeCommand())
    if (readClient) client.resume()
    else client.pause()
    // While the next reply due to the client is the server's to give, the server is read
    // whatever is held behind it: that reply is the only way on.
    const readServer = conversation.tls.handshaking('server') || (!server.lines.waiting && this.canTakeReply())
    if (readServer) server.resume()
    else server.pause()
  }
}
