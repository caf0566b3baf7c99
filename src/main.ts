#!/usr/bin/env node
// The program's entry point. Static imports are all loaded and parsed before any module's code
// runs, so the young generation is pinned first (young-generation.ts) and the command line
// (cli.ts) loaded after it: parsing pino, prom-client and the proxy's own modules would
// otherwise grow V8's new space before the pin.
import './young-generation.js'

await import('./cli.js')
