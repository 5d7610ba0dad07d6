#!/usr/bin/env node
import { main } from '../dist/daemon.js';

const code = await main(process.argv);
process.exitCode = code;
// Everything is closed by now; if a stray handle were left, do not hang on it.
setTimeout(() => process.exit(code), 500).unref();
