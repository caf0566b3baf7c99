#!/usr/bin/env node
// The program's entry point. Static imports are all loaded and parsed before any module's code
// runs, so the young generation's cap is set first (young-generation.ts) and the command line
// (cli.ts) loaded after it.
import { capYoungGeneration } from './young-generation.js'

capYoungGeneration()
await import('./cli.js')
