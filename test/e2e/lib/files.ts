// Test payloads and their digests: transfers are checked by sha256 of the bytes, never by size.
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { open } from 'node:fs/promises'
import { join } from 'node:path'

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** Writes `bytes` random bytes to dir/name (mode 0644, readable by the servers' unprivileged users). */
export async function makeRandomFile(
  dir: string,
  name: string,
  bytes: number,
): Promise<{ path: string; sha256: string }> {
  const path = join(dir, name)
  const hash = createHash('sha256')
  const file = await open(path, 'w', 0o644)
  try {
    const chunkSize = 1 << 20
    for (let written = 0; written < bytes; written += chunkSize) {
      const chunk = randomBytes(Math.min(chunkSize, bytes - written))
      hash.update(chunk)
      await file.write(chunk)
    }
  } finally {
    await file.close()
  }
  return { path, sha256: hash.digest('hex') }
}
