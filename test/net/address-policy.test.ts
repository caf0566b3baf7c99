import t from 'tap'
import fc from 'fast-check'
import {
  addressClass,
  clientKey,
  dataTargets,
  isIPv4,
  normalizeAddress,
  ownAddresses,
  policyRefusal,
  type DataPolicy,
} from '../../src/net/address-policy.js'

t.test('address classes', async (t) => {
  const table: Array<[string, string]> = [
    ['172.16.40.222', 'private'],
    ['10.100.20.222', 'private'],
    ['192.168.100.21', 'private'],
    ['127.0.0.99', 'loopback'],
    ['0.0.0.0', 'unspecified'],
    ['169.254.1.1', 'link_local'],
    ['100.64.0.1', 'carrier_grade_nat'],
    ['8.8.8.8', 'public'],
    ['::1', 'loopback'],
    ['fd00::1', 'private'],
    ['::ffff:10.0.0.1', 'private'],
    ['not an ip', 'other'],
    ['224.0.0.1', 'other'],
  ]
  for (const [a, c] of table) t.equal(addressClass(a), c, a)
  t.equal(normalizeAddress('::ffff:127.0.0.1'), '127.0.0.1')
  t.ok(isIPv4('127.0.0.1'))
  t.notOk(isIPv4('::1'))
})

// dataTargets: [what, policy, advertised host, port, control peer, upstream local, last answered,
//   expected candidates as kind:host, expected refusals as kind:host:rule]
type Row = readonly [string, DataPolicy, string | null, number, string, string, string | null, readonly string[], readonly string[]]
const AUTO: DataPolicy = { mode: 'auto', networks: null, lowPorts: false }
const CTRL: DataPolicy = { mode: 'control', networks: null, lowPorts: false }
const ADV: DataPolicy = { mode: 'advertised', networks: null, lowPorts: false }
const listed = (...networks: string[]): DataPolicy => ({ mode: 'auto', networks, lowPorts: false })
const NONE: DataPolicy = { mode: 'auto', networks: [], lowPorts: false }
// The proxy host's own addresses in these rows: loopback, a LAN address and a docker bridge.
const OWN = ownAddresses({
  lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
  eth0: [
    { address: '10.1.0.4', netmask: '255.255.0.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal: false, cidr: '10.1.0.4/16' },
    { address: 'fe80::1%eth0', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal: false, cidr: 'fe80::1/64', scopeid: 2 },
    { address: 'fd00:1::4', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal: false, cidr: 'fd00:1::4/64', scopeid: 0 },
  ],
  docker0: [{ address: '172.17.0.1', netmask: '255.255.0.0', family: 'IPv4', mac: '02:00:00:00:00:02', internal: false, cidr: '172.17.0.1/16' }],
})

const rows: readonly Row[] = [
  // The story, proxy inside the server's private network: both private, control first.
  ['PRODFTP, proxy inside', AUTO, '172.16.40.222', 23200, '10.1.0.9', '10.1.0.4', null, ['control:10.1.0.9', 'advertised:172.16.40.222'], []],
  ['PRODFTP, proxy inside, advertised answered last', AUTO, '172.16.40.222', 23200, '10.1.0.9', '10.1.0.4', '172.16.40.222', ['advertised:172.16.40.222', 'control:10.1.0.9'], []],
  ['last answered is the control peer', AUTO, '172.16.40.222', 23200, '10.1.0.9', '10.1.0.4', '10.1.0.9', ['control:10.1.0.9', 'advertised:172.16.40.222'], []],
  ['last answered is someone else', AUTO, '172.16.40.222', 23200, '10.1.0.9', '10.1.0.4', '10.9.9.9', ['control:10.1.0.9', 'advertised:172.16.40.222'], []],
  // The story, proxy outside (its upstream address is public): only the control peer.
  ['PRODFTP, proxy outside', AUTO, '172.16.40.222', 23200, '203.0.113.5', '198.51.100.20', null, ['control:203.0.113.5'], ['advertised:172.16.40.222:proxy_not_private']],
  ['DEVFTP: advertised is the control peer', AUTO, '10.100.20.222', 23256, '10.100.20.222', '192.168.100.21', null, ['control:10.100.20.222'], []],
  ['229: no advertised address', AUTO, null, 50000, '10.0.0.5', '10.1.0.4', null, ['control:10.0.0.5'], []],
  ['carrier-grade NAT counts as private', AUTO, '100.64.3.4', 40000, '100.64.0.1', '100.64.9.9', null, ['control:100.64.0.1', 'advertised:100.64.3.4'], []],
  // The three reproduced attacks (issue 8 finding 6).
  ['227 naming 127.0.0.1 from a server at 127.0.0.2', AUTO, '127.0.0.1', 8080, '127.0.0.2', '127.0.0.1', null, ['control:127.0.0.2'], ['advertised:127.0.0.1:loopback']],
  ['cloud metadata', AUTO, '169.254.169.254', 80, '10.0.0.5', '10.1.0.4', null, [], ['control:10.0.0.5:low_port', 'advertised:169.254.169.254:low_port']],
  ['cloud metadata, low ports allowed', { ...AUTO, lowPorts: true }, '169.254.169.254', 80, '10.0.0.5', '10.1.0.4', null, ['control:10.0.0.5'], ['advertised:169.254.169.254:link_local']],
  ['documentation range', AUTO, '198.51.100.7', 40000, '10.0.0.5', '10.1.0.4', null, ['control:10.0.0.5'], ['advertised:198.51.100.7:reserved']],
  ['a public address', AUTO, '93.184.216.34', 40000, '10.0.0.5', '10.1.0.4', null, ['control:10.0.0.5'], ['advertised:93.184.216.34:not_private']],
  // Each class rule.
  ['unspecified', AUTO, '0.0.0.0', 40000, '10.0.0.5', '10.1.0.4', null, ['control:10.0.0.5'], ['advertised:0.0.0.0:unspecified']],
  ['multicast', AUTO, '224.0.0.1', 40000, '10.0.0.5', '10.1.0.4', null, ['control:10.0.0.5'], ['advertised:224.0.0.1:multicast']],
  ['broadcast', AUTO, '255.255.255.255', 40000, '10.0.0.5', '10.1.0.4', null, ['control:10.0.0.5'], ['advertised:255.255.255.255:reserved']],
  ['own address: the proxy itself', AUTO, '10.1.0.4', 40000, '10.1.0.9', '10.1.0.4', null, ['control:10.1.0.9'], ['advertised:10.1.0.4:own_address']],
  ['own address: a docker bridge of the proxy host', AUTO, '172.17.0.1', 40000, '10.1.0.9', '10.1.0.4', null, ['control:10.1.0.9'], ['advertised:172.17.0.1:own_address']],
  ['proxy upstream on loopback', AUTO, '10.0.0.7', 40000, '127.0.0.1', '127.0.0.1', null, ['control:127.0.0.1'], ['advertised:10.0.0.7:proxy_not_private']],
  ['not an address', AUTO, 'ftp.example.com', 40000, '10.0.0.5', '10.1.0.4', null, ['control:10.0.0.5'], ['advertised:ftp.example.com:not_an_address']],
  // Ports.
  ['port 1023 refused, control too', AUTO, '172.16.40.222', 1023, '10.1.0.9', '10.1.0.4', null, [], ['control:10.1.0.9:low_port', 'advertised:172.16.40.222:low_port']],
  ['port 1024 allowed', AUTO, null, 1024, '10.1.0.9', '10.1.0.4', null, ['control:10.1.0.9'], []],
  ['229 to port 22', AUTO, null, 22, '10.1.0.9', '10.1.0.4', null, [], ['control:10.1.0.9:low_port']],
  ['low port allowed by the setting', { ...AUTO, lowPorts: true }, null, 20, '10.1.0.9', '10.1.0.4', null, ['control:10.1.0.9'], []],
  ['port 0', { ...AUTO, lowPorts: true }, null, 0, '10.1.0.9', '10.1.0.4', null, [], ['control:10.1.0.9:bad_port']],
  ['port 65536', AUTO, null, 65536, '10.1.0.9', '10.1.0.4', null, [], ['control:10.1.0.9:bad_port']],
  // Modes.
  ['control mode', CTRL, '172.16.40.222', 23200, '10.1.0.9', '10.1.0.4', null, ['control:10.1.0.9'], ['advertised:172.16.40.222:mode_control']],
  ['advertised mode, allowed', ADV, '172.16.40.222', 23200, '10.1.0.9', '10.1.0.4', null, ['advertised:172.16.40.222'], ['control:10.1.0.9:mode_advertised']],
  ['advertised mode, refused: nothing', ADV, '127.0.0.1', 23200, '127.0.0.2', '127.0.0.1', null, [], ['advertised:127.0.0.1:loopback', 'control:127.0.0.2:mode_advertised']],
  ['advertised mode, 229: the control peer', ADV, null, 23200, '10.1.0.9', '10.1.0.4', null, ['control:10.1.0.9'], []],
  ['advertised mode, advertised is the control peer', ADV, '10.1.0.9', 23200, '10.1.0.9', '10.1.0.4', null, ['control:10.1.0.9'], []],
  // The operator's list replaces the private-range rule and is trusted as written.
  ['listed link-local', listed('169.254.0.0/16'), '169.254.169.254', 40000, '10.0.0.5', '10.1.0.4', null, ['control:10.0.0.5', 'advertised:169.254.169.254'], []],
  ['listed loopback', listed('127.0.0.0/8'), '127.0.0.1', 40000, '127.0.0.2', '127.0.0.1', null, ['control:127.0.0.2', 'advertised:127.0.0.1'], []],
  ['listed documentation range, proxy public', listed('198.51.100.0/24'), '198.51.100.7', 40000, '203.0.113.5', '203.0.113.1', null, ['control:203.0.113.5', 'advertised:198.51.100.7'], []],
  ['listed own address', listed('10.0.0.0/8'), '10.1.0.4', 40000, '10.1.0.9', '10.1.0.4', null, ['control:10.1.0.9', 'advertised:10.1.0.4'], []],
  ['not listed, though private', listed('172.16.40.0/24'), '172.16.41.1', 40000, '10.1.0.9', '10.1.0.4', null, ['control:10.1.0.9'], ['advertised:172.16.41.1:not_listed']],
  ['listed, second network', listed('192.168.0.0/16', '172.16.40.0/24'), '172.16.40.222', 40000, '10.1.0.9', '10.1.0.4', '172.16.40.222', ['advertised:172.16.40.222', 'control:10.1.0.9'], []],
  ['listed everything still never 0.0.0.0', listed('0.0.0.0/0'), '0.0.0.0', 40000, '10.1.0.9', '10.1.0.4', null, ['control:10.1.0.9'], ['advertised:0.0.0.0:unspecified']],
  ['listed, low port still refused', listed('169.254.0.0/16'), '169.254.169.254', 80, '10.0.0.5', '10.1.0.4', null, [], ['control:10.0.0.5:low_port', 'advertised:169.254.169.254:low_port']],
  ['listed IPv6 network does not hold an IPv4 address', listed('::/0'), '10.0.0.7', 40000, '10.1.0.9', '10.1.0.4', null, ['control:10.1.0.9'], ['advertised:10.0.0.7:not_listed']],
  ['listed as an IPv4-mapped network', listed('::ffff:169.254.0.0/112'), '169.254.169.254', 40000, '10.0.0.5', '10.1.0.4', null, ['control:10.0.0.5', 'advertised:169.254.169.254'], []],
  ['an unparseable list entry matches nothing', listed('bogus', '169.254.0.0/16'), '169.254.169.254', 40000, '10.0.0.5', '10.1.0.4', null, ['control:10.0.0.5', 'advertised:169.254.169.254'], []],
  ['none: only the control peer', NONE, '172.16.40.222', 23200, '10.1.0.9', '10.1.0.4', null, ['control:10.1.0.9'], ['advertised:172.16.40.222:networks_none']],
  ['none, advertised mode: nothing', { ...NONE, mode: 'advertised' }, '172.16.40.222', 23200, '10.1.0.9', '10.1.0.4', null, [], ['advertised:172.16.40.222:networks_none', 'control:10.1.0.9:mode_advertised']],
  // IPv6.
  ['IPv6 unique local, proxy in fd00::/8', AUTO, 'fd00:2::7', 40000, 'fd00:2::1', 'fd00:1::4', null, ['control:fd00:2::1', 'advertised:fd00:2::7'], []],
  ['IPv6 loopback', AUTO, '::1', 40000, 'fd00:2::1', 'fd00:1::4', null, ['control:fd00:2::1'], ['advertised:::1:loopback']],
  ['IPv6 link-local', AUTO, 'fe80::a9fe:a9fe', 40000, 'fd00:2::1', 'fd00:1::4', null, ['control:fd00:2::1'], ['advertised:fe80::a9fe:a9fe:link_local']],
  ['IPv6 own address', AUTO, 'fd00:1::4', 40000, 'fd00:2::1', 'fd00:1::4', null, ['control:fd00:2::1'], ['advertised:fd00:1::4:own_address']],
  ['IPv6 documentation range', AUTO, '2001:db8::7', 40000, 'fd00:2::1', 'fd00:1::4', null, ['control:fd00:2::1'], ['advertised:2001:db8::7:reserved']],
  ['IPv6 public, proxy private', AUTO, '2a00:1450::1', 40000, 'fd00:2::1', 'fd00:1::4', null, ['control:fd00:2::1'], ['advertised:2a00:1450::1:not_private']],
  ['IPv6 unique local, proxy public', AUTO, 'fd00:2::7', 40000, '2a00:1450::1', '2a00:1450::2', null, ['control:2a00:1450::1'], ['advertised:fd00:2::7:proxy_not_private']],
  ['IPv6 multicast', AUTO, 'ff02::1', 40000, 'fd00:2::1', 'fd00:1::4', null, ['control:fd00:2::1'], ['advertised:ff02::1:multicast']],
  ['IPv6 unspecified', AUTO, '::', 40000, 'fd00:2::1', 'fd00:1::4', null, ['control:fd00:2::1'], ['advertised::::unspecified']],
  ['IPv6 NAT64 of the metadata address', AUTO, '64:ff9b::a9fe:a9fe', 40000, 'fd00:2::1', 'fd00:1::4', null, ['control:fd00:2::1'], ['advertised:64:ff9b::a9fe:a9fe:not_private']],
  ['IPv6 listed', listed('2001:db8::/32'), '2001:db8::7', 40000, 'fd00:2::1', 'fd00:1::4', null, ['control:fd00:2::1', 'advertised:2001:db8::7'], []],
  // IPv4-mapped: the same rules as IPv4 (a dual-stack socket reports its peers this way).
  ['mapped: PRODFTP inside', AUTO, '::ffff:172.16.40.222', 23200, '::ffff:10.1.0.9', '::ffff:10.1.0.4', null, ['control:10.1.0.9', 'advertised:172.16.40.222'], []],
  ['mapped: 127.0.0.1 from 127.0.0.2', AUTO, '::ffff:127.0.0.1', 8080, '::ffff:127.0.0.2', '::ffff:127.0.0.1', null, ['control:127.0.0.2'], ['advertised:127.0.0.1:loopback']],
  ['mapped: metadata', { ...AUTO, lowPorts: true }, '::ffff:169.254.169.254', 80, '::ffff:10.0.0.5', '::ffff:10.1.0.4', null, ['control:10.0.0.5'], ['advertised:169.254.169.254:link_local']],
  ['mapped: documentation range', AUTO, '::ffff:198.51.100.7', 40000, '10.0.0.5', '10.1.0.4', null, ['control:10.0.0.5'], ['advertised:198.51.100.7:reserved']],
  ['mapped: equal to the control peer', AUTO, '::ffff:10.0.0.5', 40000, '10.0.0.5', '10.1.0.4', null, ['control:10.0.0.5'], []],
  ['mapped: last answered', AUTO, '172.16.40.222', 23200, '10.1.0.9', '10.1.0.4', '::ffff:172.16.40.222', ['advertised:172.16.40.222', 'control:10.1.0.9'], []],
  ['mapped: own address', AUTO, '::ffff:172.17.0.1', 40000, '10.1.0.9', '10.1.0.4', null, ['control:10.1.0.9'], ['advertised:172.17.0.1:own_address']],
]

t.test('dataTargets: what a server may make the proxy dial', async (t) => {
  for (const [what, policy, host, port, peer, local, last, candidates, refusals] of rows) {
    const got = dataTargets(policy, { host, port }, peer, local, last, OWN)
    t.same(got.candidates.map((c) => `${c.kind}:${c.host}`), candidates, `${what}: candidates`)
    t.same(got.refused.map((r) => `${r.kind}:${r.host}:${r.rule}`), refusals, `${what}: refused`)
    t.ok(got.refused.every((r) => r.port === port), `${what}: refusals carry the port`)
  }
})

t.test('dataTargets: an advertised address is a candidate only by the rules, whatever the server sends', async (t) => {
  // Any IPv4 address at all: with the default rule and a proxy on a private network, a
  // candidate other than the control peer is private, not the proxy's own, not the peer.
  const octet = fc.integer({ min: 0, max: 255 })
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(fc.tuple(octet, octet, octet, octet), fc.integer({ min: 0, max: 65535 }), (parts, port) => {
        const host = parts.join('.')
        const { candidates } = dataTargets(AUTO, { host, port }, '10.1.0.9', '10.1.0.4', null, OWN)
        if (port < 1024) return candidates.length === 0
        const allowed = (c: { kind: string; host: string }): boolean =>
          c.kind === 'control'
            ? c.host === '10.1.0.9'
            : c.host === host && ['private', 'carrier_grade_nat'].includes(addressClass(host)) && !OWN.has(host)
        return candidates[0]?.host === '10.1.0.9' && candidates.every(allowed)
      }),
      { numRuns: 2000 },
    ),
  )
})

t.test('ownAddresses', async (t) => {
  t.same([...OWN].sort(), ['10.1.0.4', '127.0.0.1', '172.17.0.1', 'fd00:1::4', 'fe80::1'])
  const real = ownAddresses()
  t.ok(real.has('127.0.0.1'), 'this host has loopback')
  t.ok([...real].every((a) => !a.includes('%') && !a.startsWith('::ffff:')), 'normalised')
})

t.test('clientKey', async (t) => {
  const table: ReadonlyArray<readonly [string, number, string]> = [
    ['192.0.2.7', 64, '192.0.2.7'],
    ['::ffff:192.0.2.7', 64, '192.0.2.7'],
    ['2001:db8:1:2:3:4:5:6', 64, '2001:db8:1:2::/64'],
    ['2001:db8:1:2:ffff::1', 64, '2001:db8:1:2::/64'],
    ['2001:db8:1:2:3:4:5:6', 48, '2001:db8:1::/48'],
    ['2001:db8:1:2:3:4:5:6', 128, '2001:db8:1:2:3:4:5:6/128'],
    ['2001:db8:1:2:3:4:5:6', 1, '::/1'],
    ['fe80::1%eth0', 64, 'fe80::/64'],
    ['::1', 64, '::/64'],
    ['not an address', 64, 'not an address'],
  ]
  for (const [address, bits, key] of table) t.equal(clientKey(address, bits), key, `${address}/${bits}`)
  t.not(clientKey('2001:db8:1:2::1', 64), clientKey('2001:db8:1:3::1', 64), 'neighbouring /64s are two clients')
})

t.test('policyRefusal: the advertised address refused by the policy, not by the mode', async (t) => {
  const at = (policy: DataPolicy, host: string | null, port = 40000) =>
    policyRefusal(dataTargets(policy, { host, port }, '127.0.0.2', '127.0.0.1', null, OWN).refused)
  t.same(at(AUTO, '127.0.0.1'), { kind: 'advertised', host: '127.0.0.1', port: 40000, rule: 'loopback' })
  t.same(at(AUTO, '127.0.0.1', 80), { kind: 'advertised', host: '127.0.0.1', port: 80, rule: 'low_port' })
  t.same(at(NONE, '10.0.0.7')?.rule, 'networks_none')
  t.same(at(ADV, '169.254.169.254')?.rule, 'link_local')
  t.equal(at(CTRL, '169.254.169.254'), null, 'control mode: the operator chose, not the policy')
  t.equal(at(AUTO, null), null, '229')
  t.equal(at(AUTO, '127.0.0.2'), null, 'the control peer itself')
  t.equal(at(listed('127.0.0.0/8'), '127.0.0.1'), null, 'allowed')
})
