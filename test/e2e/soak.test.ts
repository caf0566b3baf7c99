// The soak for 30 s (bench/soak.ts): 50 concurrent clients doing RETR and STOR through the built
// proxy (dist/main.js, its own process) in front of vsftpd that advertises 127.0.0.99. No byte may
// be lost, and the proxy's open file descriptors, pool ports and sessions must come back to where
// they started. The 300-s run with the RSS check is a benchmark (BENCHMARKS.md). Ports: 24600-24999.
import t from 'tap'
import { runSoak } from '../../bench/soak.js'

// 30 s of load, then up to 60 s for the last transfers (one step's deadline) and 15 s to settle.
t.setTimeout(150_000)

t.test('50 clients for 30 s: every byte arrives, everything is released', async (t) => {
  const r = await runSoak({ seconds: 30, clients: 50, portBase: 24600 })
  t.comment(`${r.transfers} transfers (${r.retr} RETR, ${r.stor} STOR), ${(r.bytes / 2 ** 20).toFixed(0)} MiB, ${r.sessions} sessions`)

  t.ok(r.transfers >= 50, 'at least one transfer per client', { transfers: r.transfers })
  t.equal(r.failures, 0, 'no transfer, login or QUIT failed', { failures: r.failureSamples })
  t.equal(r.lostBytes, 0, 'no byte lost')
  t.equal(r.mismatches, 0, 'every sha256 equal')
  t.equal(r.proxyWarnings, 0, 'the proxy logged no warning', { warnings: r.proxyWarningSamples })

  // The proxy's own view agrees with the clients': one good data connection per transfer, one
  // session per client session, and every payload byte relayed once.
  t.equal(r.proxyCounters.dataOk, r.transfers, 'ftp_proxy_data_connections_total{result="ok"} = transfers')
  t.equal(r.proxyCounters.dataFailed, 0, 'no data connection failed')
  t.equal(r.proxyCounters.sessionsTotal, r.sessions, 'ftp_proxy_sessions_total = client sessions')
  t.equal(r.proxyCounters.bytesDownload + r.proxyCounters.bytesUpload, r.bytes, 'ftp_proxy_data_bytes_total = bytes checked')

  t.equal(r.fdsAfter, r.fdsBefore, 'open file descriptors back to their count before')
  t.equal(r.poolInUseAfter, r.poolInUseBefore, 'pool ports in use back to before')
  t.equal(r.poolInUseAfter, 0, 'no pool port in use')
  t.equal(r.sessionsAfter, r.sessionsBefore, 'sessions back to before')
  t.equal(r.sessionsAfter, 0, 'no session open')
})
