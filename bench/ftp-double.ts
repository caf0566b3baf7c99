// A light FTP server double for the idle-sessions section (bench/idle.ts): it greets, accepts any
// USER and PASS, answers NOOP and QUIT, refuses the rest, and otherwise holds the connection
// idle. vsftpd forks a process per session; 9,000 of them would measure vsftpd. Run as its own
// process (its 9,000 sockets count against its own descriptor limit, not the bench's):
//
//   node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/ftp-double.ts PORT
//
// Listens on 127.0.0.1:PORT only; exits on SIGTERM.
import net from 'node:net'

const REPLIES: Record<string, string> = {
  USER: '331 Any password will do.\r\n',
  PASS: '230 Logged in.\r\n',
  NOOP: '200 NOOP ok.\r\n',
  QUIT: '221 Bye.\r\n',
}

const port = Number(process.argv[2])
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write('usage: ftp-double.ts PORT\n')
  process.exit(2)
}

const server = net.createServer((socket) => {
  // The proxy is the only client: lines are short, but they may come split or together.
  let pending = ''
  socket.on('error', () => socket.destroy())
  socket.on('data', (chunk: Buffer) => {
    pending += chunk.toString('latin1')
    if (pending.length > 4096) {
      socket.destroy()
      return
    }
    let eol: number
    while ((eol = pending.indexOf('\n')) !== -1) {
      const verb = pending.slice(0, eol).trim().split(' ')[0]!.toUpperCase()
      pending = pending.slice(eol + 1)
      socket.write(REPLIES[verb] ?? '502 Not implemented here.\r\n')
      if (verb === 'QUIT') socket.end()
    }
  })
  socket.write('220 bench idle double\r\n')
})
// A wave of 500 connects at once: a backlog that holds them.
server.listen({ host: '127.0.0.1', port, backlog: 4096 }, () => process.stdout.write(`listening on 127.0.0.1:${port}\n`))
process.on('SIGTERM', () => process.exit(0))
