// The shape of what `diagnose` finds and concludes: `--json` prints a DiagnoseReport as is, the
// text output is rendered from it. docs/diagnose.md documents every field; keep the two in step.

import type { AddressClass, CandidateKind } from '../net/address-policy.js'
import type { PassiveEndpoint } from '../protocol/replies.js'

/** 0 healthy, 1 a passive-mode fault found, 2 usage error or nothing to diagnose (no control connection, no login). */
export type ExitCode = 0 | 1 | 2

export interface DiagnoseReport {
  /** The server as given in the URL (host without IPv6 brackets; port 21 when the URL has none). */
  readonly target: { readonly host: string; readonly port: number }
  readonly control: ControlFindings
  readonly login: LoginFindings
  readonly pasv: PassiveFindings
  readonly epsv: PassiveFindings
  readonly verdict: Verdict
  readonly exitCode: ExitCode
}

/** Everything the network side gathers: the input of the pure verdict. */
export type Findings = Omit<DiagnoseReport, 'verdict' | 'exitCode'>

export interface ControlFindings {
  /** Whether the TCP connection to the target was made. */
  readonly ok: boolean
  /** The address the control connection reached (its peer), normalised; null when not connected. */
  readonly peer: string | null
  /** Milliseconds the connect took (or until it failed). */
  readonly ms: number
  /** The greeting reply, lines joined with LF; null when none arrived. */
  readonly greeting: string | null
  /** Why the connect failed: a Node error code (ECONNREFUSED, ETIMEDOUT, ENOTFOUND, ...). */
  readonly error?: string
}

export interface LoginFindings {
  /** The user sent (URL-decoded; `anonymous` by default). The password is never recorded. */
  readonly user: string
  /** Whether the server accepted the login (230). */
  readonly ok: boolean
  /** The reply that decided it (the 230, or the refusal), or the greeting when that was not a 220; null when never tried. */
  readonly reply: string | null
  /** Why no deciding reply came (the control connection closed or went silent). */
  readonly error?: string
}

/**
 * - `ok`: a 227/229 with a valid endpoint (by reply code: a server may answer PASV with 229)
 * - `refused`: any other reply (500, 502, 425, ...): the server does not offer this mode
 * - `bad_reply`: a 227/229 whose address or port cannot be parsed
 * - `no_reply`: the control connection closed or stayed silent after the command
 * - `not_sent`: not reached (no control connection or no login)
 */
export type PassiveStatus = 'ok' | 'refused' | 'bad_reply' | 'no_reply' | 'not_sent'

export interface PassiveFindings {
  readonly command: 'PASV' | 'EPSV'
  readonly status: PassiveStatus
  /** The first reply to the command, lines joined with LF; null when none. */
  readonly reply: string | null
  /** Its code; null when none. */
  readonly code: number | null
  /** The endpoint the reply names; host is null for a 229 (RFC 2428 names only a port). */
  readonly advertised: PassiveEndpoint | null
  /** The advertised host's class; null when there is no host. */
  readonly class: AddressClass | null
  /** Whether the advertised host is the control connection's peer; null when there is no host. */
  readonly matchesControl: boolean | null
  /** One per address tried, advertised first. */
  readonly probes: readonly Probe[]
  /** Why status is not `ok` (the parse error, or the control connection's failure). */
  readonly error?: string
}

export interface Probe {
  /** `advertised`: the host in the 227; `control`: the control connection's peer. */
  readonly kind: CandidateKind
  readonly host: string
  /**
   * The port dialled. The first probe uses the port of the recorded reply; each later one sends
   * the command again for a fresh port, since a server's passive listener takes one connection.
   */
  readonly port: number
  /** Whether the TCP connect succeeded within the timeout. */
  readonly ok: boolean
  /** Why not: a Node error code (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ...) or a sentence. */
  readonly error?: string
  /** Milliseconds the connect took (or until it failed). */
  readonly ms: number
  /** The LIST sent over this data connection; present when the connect succeeded. */
  readonly listing?: Listing
}

export interface Listing {
  /** A 1xx, the data connection's EOF, then a 226/250. */
  readonly ok: boolean
  /** Bytes and LF-terminated lines received on the data connection. */
  readonly bytes: number
  readonly lines: number
  /** The last reply to LIST (the 226, or the refusal), lines joined with LF; null when none came. */
  readonly reply: string | null
  /** Milliseconds from sending LIST to the last of EOF and the final reply. */
  readonly ms: number
  readonly error?: string
}

/** Stable names for what went wrong; null in Verdict.fault when healthy. */
export type Fault =
  | 'no_control_connection'
  | 'login_failed'
  | 'advertised_unreachable'
  | 'data_port_unreachable'
  | 'listing_failed'
  | 'bad_passive_reply'
  | 'no_passive_reply'
  | 'no_passive_mode'
  | 'epsv_port_unreachable'

export interface Verdict {
  /** exitCode === 0. */
  readonly healthy: boolean
  readonly fault: Fault | null
  /** What the server advertises, one line per mode. */
  readonly advertises: readonly string[]
  /** What answered from here, one line per address tried. */
  readonly reachable: readonly string[]
  /** The root cause in plain words (for a healthy server, why it works). */
  readonly cause: string
  /** What to change, one alternative per entry; empty when healthy. */
  readonly fix: readonly string[]
  /** Things worth knowing that are not the fault. */
  readonly notes: readonly string[]
}
