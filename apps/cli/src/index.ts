export { main } from './cli.js';
export { verifyCommand, type SignatureReport, type VerifyOptions } from './verify.js';
export { signCommand } from './sign.js';
export { milterTestCommand } from './milter-test.js';
export { arCommand } from './ar.js';
export { type Io, CliError, readMessage } from './io.js';
export { selftestCommand } from './selftest.js';
