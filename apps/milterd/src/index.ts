/**
 * @inkan/milterd: the DKIM milter daemon. The `inkan-milterd` command is the usual way in;
 * this entry lets a program run it too:
 *
 * - main(argv): the command itself (returns the exit code);
 * - loadConfig / describeConfig: read opendkim.conf syntax plus overrides, and print the
 *   effective configuration (`--check-config`); ConfigError / ConfigErrors for what is wrong;
 * - startDaemon: serve with a loaded configuration (no signal handling), reload and stop it;
 * - buildRuntime + createFilter + MILTERD_NEGOTIATION: the filter alone, to put in your own
 *   @inkan/milter-protocol server;
 * - createLogger: the logger milterd writes with (pino, JSON or syslog).
 */
export { type Daemon, EX_CONFIG, EX_USAGE, main, startDaemon } from './daemon.js';
export { MILTERD_NEGOTIATION, type Runtime, createFilter } from './filter.js';
export { type Config, ConfigErrors } from './config/options.js';
export { ConfigError } from './config/errors.js';
export { type Overrides, buildRuntime, describeConfig, loadConfig } from './runtime.js';
export { type LogOptions, createLogger } from './log.js';
