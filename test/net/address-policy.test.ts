import t from 'tap'
import { addressClass, dataCandidates, isIPv4, normalizeAddress } from '../../src/net/address-policy.js'

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

t.test('data candidates', async (t) => {
  const hosts = (list: Array<{ host: string }>): string[] => list.map((c) => c.host)
  // PRODFTP: a private advertised address that differs from the control peer: control first.
  t.same(hosts(dataCandidates('auto', '172.16.40.222', '203.0.113.5', null)), ['203.0.113.5', '172.16.40.222'])
  // A public advertised address: advertised first.
  t.same(hosts(dataCandidates('auto', '93.184.216.34', '10.0.0.5', null)), ['93.184.216.34', '10.0.0.5'])
  // Equal: one candidate.
  t.same(hosts(dataCandidates('auto', '10.100.20.222', '10.100.20.222', null)), ['10.100.20.222'])
  // 229: the control peer only.
  t.same(hosts(dataCandidates('auto', null, '10.0.0.5', null)), ['10.0.0.5'])
  // 0.0.0.0 is never dialled.
  t.same(hosts(dataCandidates('auto', '0.0.0.0', '10.0.0.5', null)), ['10.0.0.5'])
  // Forced modes.
  t.same(hosts(dataCandidates('advertised', '172.16.40.222', '203.0.113.5', null)), ['172.16.40.222'])
  t.same(hosts(dataCandidates('control', '172.16.40.222', '203.0.113.5', null)), ['203.0.113.5'])
  // The address that answered last goes first.
  t.same(hosts(dataCandidates('auto', '172.16.40.222', '203.0.113.5', '172.16.40.222')), ['172.16.40.222', '203.0.113.5'])
  t.same(hosts(dataCandidates('auto', '93.184.216.34', '10.0.0.5', '10.0.0.5')), ['10.0.0.5', '93.184.216.34'])
  t.same(hosts(dataCandidates('auto', '172.16.40.222', '203.0.113.5', '203.0.113.5')), ['203.0.113.5', '172.16.40.222'])
  t.same(hosts(dataCandidates('auto', '172.16.40.222', '203.0.113.5', '10.9.9.9')), ['203.0.113.5', '172.16.40.222'])
  t.same(hosts(dataCandidates('auto', '::ffff:172.16.0.1', '::ffff:203.0.113.5', null)), ['203.0.113.5', '172.16.0.1'])
})
