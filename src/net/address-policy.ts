// Address classes, the server data endpoints to dial, and the address to advertise.

import { networkInterfaces } from 'node:os'
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

/** Whether an address is IPv4 (after normalisation), i.e. fits a 227. */
export function isIPv4(address: string): boolean {
  return ipaddr.IPv4.isValid(address) && ipaddr.IPv4.isValidFourPartDecimal(address)
}

/** What the proxy may dial for data: --upstream-data-address, -networks and -low-ports. */
export interface DataPolicy {
  readonly mode: UpstreamDataAddress
  /** null = the private-range rule; [] = none (only the control peer); else CIDRs. */
  readonly networks: readonly string[] | null
  readonly lowPorts: boolean
}

/**
 * Why an address was not dialled, for the log line (not a metric label: the failure reason
 * data_address_refused is). The class rules apply to the advertised address under the default
 * (private-range) rule only; `unspecified` under every rule.
 */
export type RefusalRule =
  | 'low_port' // the port is below 1024 and --upstream-data-low-ports is off
  | 'bad_port' // outside 1-65535 (the reply parser rejects these; here for a caller that did not)
  | 'not_an_address' // the advertised host is not an IP literal
  | 'unspecified' // 0.0.0.0 / :: : on Linux a connect to it reaches the proxy's own host
  | 'loopback'
  | 'link_local' // 169.254/16, fe80::/10: cloud metadata services live here
  | 'multicast'
  | 'reserved' // broadcast, documentation, benchmarking and the other special-purpose ranges
  | 'own_address' // one of the proxy host's own addresses
  | 'not_private' // the default rule admits RFC 1918, 100.64.0.0/10 and fc00::/7 only
  | 'proxy_not_private' // the proxy's own upstream-side address is not private: it is not inside the server's network
  | 'not_listed' // outside every network of --upstream-data-networks
  | 'networks_none' // --upstream-data-networks none
  | 'mode_control' // --upstream-data-address control
  | 'mode_advertised' // --upstream-data-address advertised: the control peer is not dialled

export interface DataRefusal {
  readonly kind: CandidateKind
  readonly host: string
  readonly port: number
  readonly rule: RefusalRule
}

export interface DataTargets {
  /** In the order to dial them, all with the advertised port; empty: answer 425, data_address_refused. */
  readonly candidates: DataCandidate[]
  /** What was not dialled and why (for the log line), in no particular order. */
  readonly refused: DataRefusal[]
}

const PRIVATE_RANGES: ReadonlySet<string> = new Set(['private', 'carrierGradeNat', 'uniqueLocal'])
const CLASS_RULES: Readonly<Record<string, RefusalRule>> = {
  unspecified: 'unspecified',
  loopback: 'loopback',
  linkLocal: 'link_local',
  multicast: 'multicast',
  broadcast: 'reserved',
  reserved: 'reserved',
}

/**
 * The server data endpoints the proxy may dial, in order, and what it refused (issue 8: a
 * server's reply must never widen where the proxy connects).
 * - The control peer is always allowed: the proxy already talks to it. A 229 names no address
 *   (RFC 2428 3), nor does an advertised address equal to the control peer: then the control
 *   peer is the only target, whatever the mode.
 * - An advertised address that differs from the control peer is allowed:
 *   - networks null (the default): when it is in a private range (RFC 1918, 100.64.0.0/10,
 *     fc00::/7) and so is the proxy's own upstream-side address (the proxy sits inside a private
 *     network, beside the server: the story's placement where 172.16.40.222 is reachable), and
 *     it is not one of the proxy host's own addresses. Loopback, link-local, multicast,
 *     unspecified, broadcast and reserved addresses are not private, so never pass.
 *   - networks a list: when it lies in one of them. The operator's list is trusted as written
 *     (127.0.0.0/8 listed means loopback is meant), except that 0.0.0.0 and :: are never dialled.
 *   - networks []: never.
 * - Every target needs a port of 1024 or above unless lowPorts: no FTP server's passive range
 *   lies below, while ssh, smtp and the like do.
 * - mode auto: the control peer first, then the advertised address if allowed, the one that
 *   answered last (lastAnswered) first. control: the control peer only. advertised: the
 *   advertised address only, if allowed.
 * All addresses are compared normalised (`::ffff:10.0.0.1` is 10.0.0.1).
 * @param controlPeer the address the upstream control socket is connected to
 * @param upstreamLocal the local address of the upstream control socket
 * @param ownAddresses the proxy host's addresses, normalised (see ownAddresses())
 */
export function dataTargets(
  policy: DataPolicy,
  advertised: { readonly host: string | null; readonly port: number },
  controlPeer: string,
  upstreamLocal: string,
  lastAnswered: string | null,
  ownAddresses: ReadonlySet<string>,
): DataTargets {
  const port = advertised.port
  const control: DataCandidate = { kind: 'control', host: normalizeAddress(controlPeer) }
  const adv: DataCandidate | null =
    advertised.host === null || normalizeAddress(advertised.host) === control.host
      ? null
      : { kind: 'advertised', host: normalizeAddress(advertised.host) }
  const refused: DataRefusal[] = []
  const refuse = (c: DataCandidate, rule: RefusalRule): void => {
    refused.push({ kind: c.kind, host: c.host, port, rule })
  }
  const portRule: RefusalRule | null =
    !Number.isInteger(port) || port < 1 || port > 65535 ? 'bad_port' : port < 1024 && !policy.lowPorts ? 'low_port' : null
  if (portRule !== null) {
    refuse(control, portRule)
    if (adv !== null) refuse(adv, portRule)
    return { candidates: [], refused }
  }
  if (adv === null) return { candidates: [control], refused }

  const advRule = advertisedRule(adv.host, policy.networks, upstreamLocal, ownAddresses)
  if (policy.mode === 'control') {
    refuse(adv, 'mode_control')
    return { candidates: [control], refused }
  }
  if (advRule !== null) refuse(adv, advRule)
  if (policy.mode === 'advertised') {
    refuse(control, 'mode_advertised')
    return { candidates: advRule === null ? [adv] : [], refused }
  }
  if (advRule !== null) return { candidates: [control], refused }
  const lastIsAdv = lastAnswered !== null && normalizeAddress(lastAnswered) === adv.host
  return { candidates: lastIsAdv ? [adv, control] : [control, adv], refused }
}

/**
 * The advertised address's refusal when the policy (not --upstream-data-address control) kept
 * it from being dialled, else null. When the candidates that were dialled all failed and this is
 * not null, the failure is the policy's (reason data_address_refused, whose hint names
 * --upstream-data-networks): the three attacks of issue 8 look like this in `auto` mode, since
 * the control peer is dialled and serves no data port there.
 */
export function policyRefusal(refused: readonly DataRefusal[]): DataRefusal | null {
  return refused.find((r) => r.kind === 'advertised' && r.rule !== 'mode_control') ?? null
}

/** Why an advertised address (normalised, not the control peer) may not be dialled, or null. */
function advertisedRule(
  host: string,
  networks: readonly string[] | null,
  upstreamLocal: string,
  ownAddresses: ReadonlySet<string>,
): RefusalRule | null {
  if (!ipaddr.isValid(host)) return 'not_an_address'
  const addr = ipaddr.process(host)
  const range = addr.range()
  if (range === 'unspecified') return 'unspecified'
  if (networks !== null) {
    if (networks.length === 0) return 'networks_none'
    return networks.some((n) => inNetwork(addr, n)) ? null : 'not_listed'
  }
  const classRule = CLASS_RULES[range]
  if (classRule !== undefined) return classRule
  if (ownAddresses.has(host)) return 'own_address'
  if (!PRIVATE_RANGES.has(range)) return 'not_private'
  if (!isPrivate(upstreamLocal)) return 'proxy_not_private'
  return null
}

function isPrivate(address: string): boolean {
  return ipaddr.isValid(address) && PRIVATE_RANGES.has(ipaddr.process(address).range())
}

/** Whether addr lies in the CIDR; an IPv4-mapped IPv6 network (::ffff:10.0.0.0/104) is its IPv4 one. */
function inNetwork(addr: ipaddr.IPv4 | ipaddr.IPv6, cidr: string): boolean {
  let net: ipaddr.IPv4 | ipaddr.IPv6
  let bits: number
  try {
    ;[net, bits] = ipaddr.parseCIDR(cidr)
  } catch {
    return false // config validation rejects these; an unparseable entry matches nothing
  }
  if (net.kind() === 'ipv6' && (net as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
    net = (net as ipaddr.IPv6).toIPv4Address()
    bits -= 96
  }
  return addr.kind() === net.kind() && addr.match(net, bits)
}

/**
 * The proxy host's own addresses, normalised (IPv6 without its zone), from
 * os.networkInterfaces(): one getifaddrs(3) call, cheap enough per PASV; a caller may cache it.
 * Only the current network namespace's interfaces are seen.
 */
export function ownAddresses(
  interfaces: ReturnType<typeof networkInterfaces> = networkInterfaces(),
): Set<string> {
  const set = new Set<string>()
  for (const list of Object.values(interfaces)) {
    for (const info of list ?? []) set.add(normalizeAddress(info.address.replace(/%.*$/, '')))
  }
  return set
}

/**
 * The key a client counts under for the per-client limits: an IPv4 address (IPv4-mapped too) is
 * itself; an IPv6 address is its network at v6Prefix bits (`2001:db8:1:2::/64`), since one
 * customer's network holds 2^64 addresses (RFC 6177). Anything unparseable is returned as given.
 */
export function clientKey(address: string, v6Prefix: number): string {
  const bare = address.replace(/%.*$/, '')
  if (!ipaddr.isValid(bare)) return address
  const addr = ipaddr.process(bare)
  if (addr.kind() === 'ipv4') return addr.toString()
  const network = ipaddr.IPv6.networkAddressFromCIDR(`${addr.toString()}/${v6Prefix}`)
  return `${network.toString()}/${v6Prefix}`
}
