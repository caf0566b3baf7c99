#!/usr/bin/env node
// Builds grafana/dashboards/ftp-pasv-proxy.json, the Grafana dashboard for ftp-pasv-proxy.
//
//   node grafana/build-dashboard.mjs          write the JSON
//   node grafana/build-dashboard.mjs --check  exit 1 if the committed JSON differs from this script
//
// A script rather than hand-written JSON: 20-odd panels share one data source, one label selector
// and one panel shape, and a generator keeps them from drifting apart. Plain objects rather than
// @grafana/grafana-foundation-sdk: the output is small and stable, and the project need not carry
// a build dependency for it. test/deploy/deploy.test.ts runs --check and checks every panel.
//
// Metric names are the contract of issue 3 (src/observe/metrics.ts); the test fails on a name that
// is not one of them.

import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const OUT = join(dirname(fileURLToPath(import.meta.url)), 'dashboards', 'ftp-pasv-proxy.json')

// The data source is a dashboard variable, so the same JSON works provisioned (Grafana picks the
// default Prometheus) and imported by hand (the user picks one from the drop-down).
// eslint-disable-next-line no-template-curly-in-string -- Grafana's variable syntax, not a template
const DS = { type: 'prometheus', uid: '${DS_PROMETHEUS}' }
// Every query is limited to the selected proxies. The variables come from ftp_proxy_build_info,
// so `up` below only ever matches proxy targets, never another job's.
const SEL = 'job=~"$job", instance=~"$instance"'
// $__rate_interval is at least four scrape intervals (the data source sets timeInterval: 5s), so a
// rate always has enough samples whatever the zoom.
const RI = '$__rate_interval'

const COLORS = {
  ok: 'green',
  failed: 'red',
  cancelled: 'yellow',
  download: 'blue',
  upload: 'purple',
}

// One line per failure reason (src/proxy/outcomes.ts FAILURE_REASONS), with what to do about it.
// Markdown: Grafana renders panel descriptions as Markdown in the (i) tooltip.
const REASON_HELP = [
  "- **upstream_refused**: the server advertised a data address that refuses the proxy's connection, usually an address that is not the server's own, such as a private address from behind NAT. Fix the server: vsftpd `pasv_address`, ProFTPD `MasqueradeAddress`, pure-ftpd `-P`; or start the proxy with `--upstream-data-address control`.",
  "- **upstream_timeout**: connects to the server's data address time out: a firewall drops the server's passive port range, or the address is blackholed. Open the range (vsftpd `pasv_min_port`/`pasv_max_port`, ProFTPD `PassivePorts`, pure-ftpd `-p`) from the proxy to the server.",
  '- **upstream_unreachable**: the proxy has no route to the advertised address. Fix the advertised address (settings above) or run the proxy where it can reach it.',
  "- **client_timeout**: the client got the proxy's passive reply but never connected: open the proxy's `--passive-ports` range to the clients; behind NAT, set `--advertise-address`.",
  '- **pool_exhausted**: every passive port was leased and the client got 425: widen `--passive-ports`.',
  '- **bad_passive_reply**: the server sent a 227/229 the proxy cannot parse: run `ftp-pasv-proxy diagnose` against the server.',
  "- **reset**: a leg broke mid-transfer (the client or the server reset its connection): check the server's logs and per-IP limits (behind the proxy every session comes from the proxy's address), and idle timeouts of firewalls between them on long transfers.",
  "- **data_address_refused**: the server's 227 named an address the proxy does not dial by default (loopback, link-local, a public address, the proxy's own, or a port below 1024), and its control address did not serve the data port: if that address really is the server's, list its network in `--upstream-data-networks`; otherwise fix the server's passive address (settings above).",
  '- **lease_limit**: a session or a client address already held as many data connections as allowed: raise `--max-leases-per-session` or `--max-leases-per-client` if clients legitimately open several at once.',
  '- **data_idle**: no byte moved on a data connection, or the final reply never came, for `--data-idle-timeout`: a stalled peer or a dead path between proxy and server.',
].join('\n')

let nextId = 1

function target (expr, legendFormat, extra = {}) {
  return { datasource: DS, editorMode: 'code', expr, legendFormat, range: true, ...extra }
}

function withRefIds (targets) {
  return targets.map((t, i) => ({ ...t, refId: String.fromCharCode(65 + i) }))
}

function steps (...pairs) {
  // pairs: [color, value|null]; the first step is the base (value null), Grafana's convention.
  return { mode: 'absolute', steps: pairs.map(([color, value]) => ({ color, value })) }
}

function stat ({
  title,
  description,
  targets,
  gridPos,
  unit = 'short',
  decimals,
  thresholds,
  mappings = [],
  noValue,
  colorMode = 'background',
  textMode = 'value',
  overrides = [],
}) {
  return {
    id: nextId++,
    type: 'stat',
    title,
    description,
    datasource: DS,
    gridPos,
    targets: withRefIds(targets),
    fieldConfig: {
      defaults: {
        unit,
        ...(decimals === undefined ? {} : { decimals }),
        ...(noValue === undefined ? {} : { noValue }),
        color: { mode: 'thresholds' },
        thresholds,
        mappings,
      },
      overrides,
    },
    options: {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      colorMode,
      graphMode: 'area',
      justifyMode: 'auto',
      textMode,
      orientation: 'auto',
      wideLayout: true,
      showPercentChange: false,
    },
  }
}

function timeseries ({ title, description, targets, gridPos, unit = 'short', stacked = false, axisLabel = '', overrides = [], min = 0 }) {
  return {
    id: nextId++,
    type: 'timeseries',
    title,
    description,
    datasource: DS,
    gridPos,
    targets: withRefIds(targets),
    fieldConfig: {
      defaults: {
        unit,
        min,
        color: { mode: 'palette-classic' },
        custom: {
          drawStyle: 'line',
          lineInterpolation: 'linear',
          lineWidth: 1,
          fillOpacity: stacked ? 60 : 10,
          gradientMode: 'none',
          showPoints: 'never',
          pointSize: 4,
          spanNulls: false,
          axisLabel,
          axisPlacement: 'auto',
          stacking: { mode: stacked ? 'normal' : 'none', group: 'A' },
          thresholdsStyle: { mode: 'off' },
        },
        thresholds: steps(['green', null]),
        mappings: [],
      },
      overrides,
    },
    options: {
      legend: { displayMode: 'table', placement: 'right', showLegend: true, calcs: ['lastNotNull', 'max'] },
      tooltip: { mode: 'multi', sort: 'desc' },
    },
  }
}

function colorOverride (name, color) {
  return { matcher: { id: 'byName', options: name }, properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: color } }] }
}

// NaN (0/0: no data connections, or a pool of size 0) shows as words, not "NaN".
function nanAs (text) {
  return { type: 'special', options: { match: 'nan', result: { text, index: 0 } } }
}

// Layout: a row of six stats, 4 wide and 5 high, then time series two to a row, 12 wide, 9 high.
const STAT_W = 4
const STAT_H = 5
const TS_W = 12
const TS_H = 9
const statAt = (i) => ({ x: i * STAT_W, y: 0, w: STAT_W, h: STAT_H })
const tsAt = (i) => ({ x: (i % 2) * TS_W, y: STAT_H + Math.floor(i / 2) * TS_H, w: TS_W, h: TS_H })

const panels = [
  stat({
    title: 'Failed data connections (last hour)',
    description:
      'Passive data connections the proxy could not set up in the last hour, all reasons together. ' +
      'Anything above 0 means clients got a 425 instead of their file or listing. ' +
      'See "Data-connection failures by reason" below for why, and what to change.',
    targets: [target(`sum(increase(ftp_proxy_data_connection_failures_total{${SEL}}[1h]))`, 'failed')],
    gridPos: statAt(0),
    decimals: 0,
    // Red from 0.5: with 0 decimals that is "shows 1 or more"; increase() never reports a
    // fraction of a single failure in practice (it only extrapolates upwards).
    thresholds: steps(['green', null], ['red', 0.5]),
    noValue: '0',
  }),
  stat({
    title: 'Data-connection success (last hour)',
    description:
      'Share of data-connection setups in the last hour that worked: ok / (ok + failed). ' +
      'Cancelled setups (client sent another PASV, ABOR, or closed) are left out: they are not faults. ' +
      '100% is healthy; a server that advertises an unreachable address on every PASV shows as 0%. Below 99%, read the failure reasons below.',
    targets: [
      target(
        `sum(increase(ftp_proxy_data_connections_total{${SEL}, result="ok"}[1h])) / sum(increase(ftp_proxy_data_connections_total{${SEL}, result=~"ok|failed"}[1h]))`,
        'success'
      ),
    ],
    gridPos: statAt(1),
    unit: 'percentunit',
    decimals: 1,
    thresholds: steps(['red', null], ['orange', 0.9], ['green', 0.99]),
    mappings: [nanAs('no transfers')],
    noValue: 'no transfers',
  }),
  stat({
    title: "Advertised addresses not the server's own (last hour)",
    description:
      "Passive replies in the last hour in which the FTP server named a data address that differs from the address the proxy reached it at: the server's NAT or passive-address setting is wrong. " +
      'The proxy bridges them, so clients still work; clients that bypass the proxy fail. ' +
      'A private address alone is fine: a server on a private network that advertises its own private address works. ' +
      'Network team: this is the panel to watch drop to 0 while NAT is fixed. Server settings: vsftpd `pasv_address`, ProFTPD `MasqueradeAddress`, pure-ftpd `-P`.',
    targets: [target(`sum(increase(ftp_proxy_advertised_address_total{${SEL}, matches_control="false"}[1h]))`, 'differs')],
    gridPos: statAt(2),
    decimals: 0,
    thresholds: steps(['green', null], ['orange', 0.5]),
    noValue: '0',
  }),
  stat({
    title: 'Passive port pool in use',
    description:
      'Leased passive ports as a share of the pool (--passive-ports), for the fullest selected proxy. ' +
      'Each passive transfer holds one port until it ends. At 100% the next PASV gets 425 (reason pool_exhausted): ' +
      'widen --passive-ports (and the firewall rules for it) or add proxy instances.',
    targets: [target(`max(ftp_proxy_port_pool_in_use{${SEL}} / ftp_proxy_port_pool_size{${SEL}})`, 'in use')],
    gridPos: statAt(3),
    unit: 'percentunit',
    decimals: 0,
    thresholds: steps(['green', null], ['orange', 0.75], ['red', 0.9]),
    mappings: [nanAs('no pool')],
  }),
  stat({
    title: 'Active sessions',
    description:
      'FTP control sessions open now through the selected proxies. Each holds a client connection and a connection to the server; ' +
      "the server sees all of them from the proxy's address, so its per-IP limits (vsftpd max_per_ip, ProFTPD MaxClientsPerHost, pure-ftpd -C) apply to them together.",
    targets: [target(`sum(ftp_proxy_sessions_active{${SEL}})`, 'sessions')],
    gridPos: statAt(4),
    decimals: 0,
    thresholds: steps(['blue', null]),
    colorMode: 'value',
    noValue: '0',
  }),
  stat({
    title: 'Proxies up',
    description:
      "UP when Prometheus scraped every selected proxy's /metrics in its last scrape; DOWN when at least one failed (process down, or --metrics-listen unreachable). " +
      "Readiness (/readyz: can the proxy reach the FTP server's control port?) is not a metric; see the alert FtpProxyUpstreamUnreachable and the panel of rejected sessions.",
    targets: [target(`min(up{${SEL}})`, 'up')],
    gridPos: statAt(5),
    decimals: 0,
    thresholds: steps(['red', null], ['green', 1]),
    mappings: [{ type: 'value', options: { 0: { text: 'DOWN', color: 'red', index: 0 }, 1: { text: 'UP', color: 'green', index: 1 } } }],
    noValue: 'no target',
  }),

  timeseries({
    title: 'Data-connection failures by reason',
    description: 'Failed data-connection setups per minute, stacked by reason; together they make the "failed" line of the next panel.\n\n' + REASON_HELP,
    targets: [target(`sum by (reason) (rate(ftp_proxy_data_connection_failures_total{${SEL}}[${RI}])) * 60`, '{{reason}}')],
    gridPos: tsAt(0),
    unit: 'cpm',
    stacked: true,
  }),
  timeseries({
    title: 'Data connections by result',
    description:
      'Data-connection setups per minute, by how they ended: ok (data flowed), failed (client got 425; reasons on the left), ' +
      'cancelled (client sent another PASV, ABOR, or closed first: not a fault). A healthy proxy shows only ok and a little cancelled.',
    targets: [target(`sum by (result) (rate(ftp_proxy_data_connections_total{${SEL}}[${RI}])) * 60`, '{{result}}')],
    gridPos: tsAt(1),
    unit: 'cpm',
    overrides: ['ok', 'failed', 'cancelled'].map((r) => colorOverride(r, COLORS[r])),
  }),
  timeseries({
    title: 'Advertised addresses by class and match',
    description:
      'Addresses the server put in its passive replies, per minute, by class (private, public, loopback, unspecified 0.0.0.0, link_local, carrier_grade_nat, other) and by whether they equal the address the proxy reached the server at (matches_control). ' +
      'matches_control=false is the fault to fix on the server or its NAT (vsftpd `pasv_address`, ProFTPD `MasqueradeAddress`, pure-ftpd `-P`); ' +
      'a private class with matches_control=true is a server on a private network advertising itself correctly.',
    targets: [
      target(
        `sum by (class, matches_control) (rate(ftp_proxy_advertised_address_total{${SEL}}[${RI}])) * 60`,
        '{{class}}, matches_control={{matches_control}}'
      ),
    ],
    gridPos: tsAt(2),
    unit: 'cpm',
    overrides: [
      {
        matcher: { id: 'byRegexp', options: '.*matches_control=false' },
        properties: [{ id: 'custom.lineWidth', value: 3 }],
      },
    ],
  }),
  timeseries({
    title: 'Passive replies rewritten',
    description:
      'Passive replies the proxy rewrote to name its own address and pool port, per minute, by the form the client got: 227 (client sent PASV) or 229 (client sent EPSV). ' +
      'If this is 0 while clients transfer files, they use active mode (PORT/EPRT) or connect past the proxy.',
    targets: [target(`sum by (reply) (rate(ftp_proxy_passive_replies_total{${SEL}}[${RI}])) * 60`, '{{reply}}')],
    gridPos: tsAt(3),
    unit: 'cpm',
  }),
  timeseries({
    title: 'Throughput by direction',
    description:
      'Bytes relayed over data connections per second, download (server to client) and upload (client to server). ' +
      'Bytes are counted when each data connection closes, so a long transfer shows as one spike at its end, not as a plateau.',
    targets: [target(`sum by (direction) (rate(ftp_proxy_data_bytes_total{${SEL}}[${RI}]))`, '{{direction}}')],
    gridPos: tsAt(4),
    unit: 'Bps',
    overrides: ['download', 'upload'].map((d) => colorOverride(d, COLORS[d])),
  }),
  timeseries({
    title: 'Cancelled and foreign data connections',
    description:
      'Per minute. Cancelled setups by reason: replaced (the client asked for a new passive port before using the last), aborted (ABOR), ' +
      'refused (the server refused the transfer command), closed (the session ended first); these are normal client behaviour in small numbers. ' +
      "Foreign: connections to a pool port from another IP than the control client's, refused as RFC 2577 port stealing; " +
      'a steady rate means a scanner, or clients behind NAT that use several source addresses.',
    targets: [
      target(`sum by (reason) (rate(ftp_proxy_data_connections_cancelled_total{${SEL}}[${RI}])) * 60`, 'cancelled: {{reason}}'),
      target(`sum(rate(ftp_proxy_foreign_data_connections_total{${SEL}}[${RI}])) * 60`, 'foreign IP refused'),
    ],
    gridPos: tsAt(5),
    unit: 'cpm',
    overrides: [colorOverride('foreign IP refused', 'red')],
  }),
  timeseries({
    title: 'Data connect time (p50, p95, p99)',
    description:
      "How long the proxy took to connect to the server's data address, successful connects only (failures are counted above, not timed here). " +
      'Milliseconds on a LAN; seconds mean a slow path, or a first candidate address that timed out before the second answered: ' +
      'fix the server\'s advertised address or set --upstream-data-address. Bounded by --connect-timeout.',
    targets: [0.5, 0.95, 0.99].map((q) =>
      target(
        `histogram_quantile(${q}, sum by (le) (rate(ftp_proxy_data_connect_seconds_bucket{${SEL}}[${RI}])))`,
        `p${Math.round(q * 100)}`
      )
    ),
    gridPos: tsAt(6),
    unit: 's',
  }),
  timeseries({
    title: 'Data transfer duration (p50, p95)',
    description:
      'How long relayed data connections lasted, from the client connecting to both sides closed: listings take milliseconds, large files minutes. ' +
      'A rising p95 with steady file sizes points at a slow network or server; compare with throughput.',
    targets: [0.5, 0.95].map((q) =>
      target(
        `histogram_quantile(${q}, sum by (le) (rate(ftp_proxy_data_transfer_seconds_bucket{${SEL}}[${RI}])))`,
        `p${Math.round(q * 100)}`
      )
    ),
    gridPos: tsAt(7),
    unit: 's',
  }),
  timeseries({
    title: 'Passive port pool: in use vs size',
    description:
      'Leased passive ports (solid) against the pool size (dashed), per proxy. When "in use" meets "size", new PASV requests get 425 (reason pool_exhausted): ' +
      'widen --passive-ports, open the same range in firewalls, or add instances.',
    targets: [
      target(`sum by (instance) (ftp_proxy_port_pool_in_use{${SEL}})`, '{{instance}} in use'),
      target(`sum by (instance) (ftp_proxy_port_pool_size{${SEL}})`, '{{instance}} size'),
    ],
    gridPos: tsAt(8),
    overrides: [
      {
        matcher: { id: 'byRegexp', options: '.* size' },
        properties: [{ id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } }, { id: 'custom.fillOpacity', value: 0 }],
      },
    ],
  }),
  timeseries({
    title: 'Sessions rejected by reason',
    description:
      "Client connections refused before a session started, per minute. upstream_unreachable: the proxy could not connect to the FTP server's control port (--upstream), " +
      'so the client got 421: check that the server runs and is reachable from the proxy host (alert FtpProxyUpstreamUnreachable). ' +
      'limit: a session limit was reached, --max-sessions (all clients together) or --max-sessions-per-client (one client address), and the client got 421 Too many connections: ' +
      'raise the limit if the load is legitimate, or find the client in the log ("session limit reached"). ' +
      'acl: the client address is not in --allow-clients and the client got 421 before the server was contacted: ' +
      'add its network to --allow-clients if it should be served; otherwise it is a stranger knocking (log line "client not in --allow-clients").',
    targets: [target(`sum by (reason) (rate(ftp_proxy_sessions_rejected_total{${SEL}}[${RI}])) * 60`, '{{reason}}')],
    gridPos: tsAt(9),
    unit: 'cpm',
    stacked: true,
  }),
  timeseries({
    title: 'Sessions: open and started',
    description:
      'Control sessions open now (gauge) and sessions started per minute. Open sessions that climb while starts stay flat are clients that stay connected idle (closed after --idle-timeout).',
    targets: [
      target(`sum(ftp_proxy_sessions_active{${SEL}})`, 'open'),
      target(`sum(rate(ftp_proxy_sessions_total{${SEL}}[${RI}])) * 60`, 'started per minute'),
    ],
    gridPos: tsAt(10),
  }),
  timeseries({
    title: 'Running versions',
    description:
      'Number of proxy instances reporting each version (ftp_proxy_build_info). During a rollout two versions show; afterwards one.',
    targets: [target(`count by (version) (ftp_proxy_build_info{${SEL}})`, '{{version}}')],
    gridPos: tsAt(11),
    stacked: true,
  }),
  timeseries({
    title: 'Commands refused by the proxy, by reason',
    description:
      'Client commands the proxy answered itself instead of passing them to the server, per minute, by reason. ' +
      'bounce (504): a PORT or EPRT naming another host than the client, or a port below 1024, refused as an FTP bounce attempt (RFC 2577). ' +
      'Bounce attempts are a security signal: someone tries to use the proxy to reach a third host (alert FtpProxyBounceAttempts); ' +
      'the log line "command refused" with reason bounce names the client and the address it asked for. ' +
      'One exception: a client behind NAT that puts its own private address in PORT also counts as bounce; that is a client quirk (use passive mode), not an attack. ' +
      'malformed (501): PORT or EPRT parameters that do not parse. epsv_all (503): PASV, PORT or EPRT after the client sent EPSV ALL (RFC 2428). ' +
      'unsupported (502): LPSV or LPRT, or PORT/EPRT with --active-mode deny. ' +
      'malformed, epsv_all and unsupported are client quirks: a client that keeps failing needs passive mode or another setting, not a firewall change.',
    targets: [target(`sum by (reason) (rate(ftp_proxy_commands_refused_total{${SEL}}[${RI}])) * 60`, '{{reason}}')],
    gridPos: tsAt(12),
    unit: 'cpm',
    overrides: [
      {
        matcher: { id: 'byName', options: 'bounce' },
        properties: [
          { id: 'color', value: { mode: 'fixed', fixedColor: 'red' } },
          { id: 'custom.lineWidth', value: 3 },
        ],
      },
    ],
  }),
  stat({
    title: 'Config reloads (time range shown)',
    description:
      'Config reloads on SIGHUP (systemctl reload, kill -HUP) in the time range shown, summed over the selected proxies: ok, and rejected (red from 1). ' +
      'A rejected reload leaves the running config in place, so the change that was meant to apply did not. ' +
      'Check the log line "config reload rejected": its error field says why, either a config that does not load ' +
      '(fix it now: a restart with it would fail) or a change to listen, passive-ports or metrics-listen, which needs a restart. ' +
      'The alert FtpProxyConfigReloadRejected names the instance.',
    targets: [target(`sum by (result) (increase(ftp_proxy_config_reloads_total{${SEL}}[$__range]))`, '{{result}}', { range: false, instant: true })],
    gridPos: tsAt(13),
    decimals: 0,
    thresholds: steps(['green', null]),
    textMode: 'value_and_name',
    overrides: [
      {
        matcher: { id: 'byName', options: 'rejected' },
        properties: [{ id: 'thresholds', value: steps(['green', null], ['red', 0.5]) }],
      },
    ],
    noValue: '0',
  }),
]

const variable = (name, label, query) => ({
  name,
  label,
  type: 'query',
  datasource: DS,
  query,
  definition: query,
  // 2 = on time range change: a proxy added since the dashboard was opened shows up.
  refresh: 2,
  // No allValue: "All" expands to the listed values, so `up{job=~"$job"}` can only match
  // proxy targets (a catch-all .* would match every job's targets too).
  includeAll: true,
  multi: true,
  current: {},
  options: [],
  regex: '',
  sort: 1,
  hide: 0,
})

const dashboard = {
  id: null,
  uid: 'ftp-pasv-proxy',
  title: 'FTP passive proxy (ftp-pasv-proxy)',
  description:
    'Which FTP data connections fail through ftp-pasv-proxy and why, whether the FTP server advertises a data address that is not its own, and the proxy\'s capacity.',
  tags: ['ftp', 'ftp-pasv-proxy'],
  editable: true,
  graphTooltip: 1,
  fiscalYearStartMonth: 0,
  liveNow: false,
  refresh: '30s',
  schemaVersion: 39,
  version: 1,
  time: { from: 'now-6h', to: 'now' },
  timepicker: {},
  timezone: 'browser',
  weekStart: '',
  links: [],
  annotations: {
    list: [
      {
        builtIn: 1,
        datasource: { type: 'grafana', uid: '-- Grafana --' },
        enable: true,
        hide: true,
        iconColor: 'rgba(0, 211, 255, 1)',
        name: 'Annotations & Alerts',
        type: 'dashboard',
      },
    ],
  },
  templating: {
    list: [
      {
        name: 'DS_PROMETHEUS',
        label: 'Data source',
        type: 'datasource',
        query: 'prometheus',
        current: {},
        options: [],
        regex: '',
        refresh: 1,
        includeAll: false,
        multi: false,
        hide: 0,
      },
      variable('job', 'Job', 'label_values(ftp_proxy_build_info, job)'),
      variable('instance', 'Instance', 'label_values(ftp_proxy_build_info{job=~"$job"}, instance)'),
    ],
  },
  panels,
}

const json = JSON.stringify(dashboard, null, 2) + '\n'

if (process.argv.includes('--check')) {
  let committed = ''
  try {
    committed = readFileSync(OUT, 'utf8')
  } catch {
    // A missing file is a difference like any other.
  }
  if (committed !== json) {
    process.stderr.write(`${OUT} is out of date: run node grafana/build-dashboard.mjs\n`)
    process.exit(1)
  }
} else {
  writeFileSync(OUT, json)
}
