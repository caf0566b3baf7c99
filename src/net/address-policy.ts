// Address classes, the server data endpoints to dial, and the address to advertise.

import ipaddr from 'ipaddr.js'
import type { UpstreamDataAddress } from '../config-types.js'

/** Bounded set of address classes, used as a metric label and in log hints. */
export type AddressClass =
  | 'private'
  | 'public'
  | 'loopback'
  | 'unspecified'
  | 'link_local'
  | 'carrier_grade_nat'
  | 'other'

export const ADDRESS_CLASSES: readonly AddressClass[] = [
  'private',
  'public',
  'loopback',
  'unspecified',
  'link_local',
  'carrier_grade_nat',
  'other',
]

/** `::ffff:127.0.0.1` is 127.0.0.1; anything unparseable is returned unchanged. */
export function normalizeAddress(address: string): string {
  if (!ipaddr.isValid(address)) return address
  return ipaddr.process(address).toString()
}

export function addressClass(address: string): AddressClass {
  if (!ipaddr.isValid(address)) return 'other'
  const range = ipaddr.process(address).range()
  switch (range) {
    case 'unicast':
      return 'public'
    case 'private':
    case 'uniqueLocal': // IPv6's private range (fc00::/7)
      return 'private'
    case 'loopback':
      return 'loopback'
    case 'unspecified':
      return 'unspecified'
    case 'linkLocal':
      return 'link_local'
    case 'carrierGradeNat':
      return 'carrier_grade_nat'
    default:
      return 'other'
  }
}

export type CandidateKind = 'control' | 'advertised'

export interface DataCandidate {
  readonly kind: CandidateKind
  readonly host: string
}

/**
 * The server data endpoints to try, in order.
 * - A 229 names no address (RFC 2428 3): the control peer only.
 * - `advertised` / `control` force one address.
 * - `auto`: one candidate when the advertised address is the control peer; else, when the
 *   advertised address is not public (the PRODFTP case: a private or loopback address that
 *   differs from the address the proxy reached the server at), the control peer first, then the
 *   advertised address; otherwise the reverse. An unspecified address (0.0.0.0) is never
 *   dialled: on Linux a connect to it reaches the proxy's own host.
 * - The address that last answered for this upstream goes first, so a blackholed address
 *   costs one connect timeout, not one per PASV.
 */
export function dataCandidates(
  mode: UpstreamDataAddress,
  advertised: string | null,
  controlPeer: string,
  lastAnswered: string | null,
): DataCandidate[] {
  const control: DataCandidate = { kind: 'control', host: normalizeAddress(controlPeer) }
  if (advertised === null) return [control]
  const adv: DataCandidate = { kind: 'advertised', host: normalizeAddress(advertised) }
  const dialable = addressClass(adv.host) !== 'unspecified'
  if (mode === 'control' || !dialable) return [control]
  if (mode === 'advertised') return [adv]
  if (adv.host === control.host) return [adv]
  const list = addressClass(adv.host) === 'public' ? [adv, control] : [control, adv]
  if (list[1]?.host === lastAnswered) list.reverse()
  return list
}

/** Whether an address is IPv4 (after normalisation), i.e. fits a 227. */
export function isIPv4(address: string): boolean {
  return ipaddr.IPv4.isValid(address) && ipaddr.IPv4.isValidFourPartDecimal(address)
}
