import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { addGenkeyCommand } from './commands/genkey.js';
import { addPolicyCommands } from './commands/policy.js';
import { addRecordCommand } from './commands/record.js';
import { addRotateCommand } from './commands/rotate.js';
import type { CommandContext, Io } from './commands/shared.js';
import { addStoreCommands } from './commands/store.js';
import { addTestkeyCommand } from './commands/testkey.js';
import { GenkeyError } from './genkey.js';

export type { Io } from './commands/shared.js';

const defaultIo: Io = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

const version = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();

/** The inkan-keytool command line. Returns the exit code. */
export async function main(argv: string[], io: Io = defaultIo): Promise<number> {
  let code = 0;
  const program = new Command('inkan-keytool')
    .description('DKIM keys and DNS records: make key pairs, print the records to publish, check what DNS serves.')
    .version(version, '-V, --version')
    .option('--json', 'print JSON for scripts instead of text')
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .exitOverride()
    .showHelpAfterError('(add --help for usage)');
  const ctx: CommandContext = {
    program,
    io,
    asJson: () => !!program.opts().json,
    setExitCode: (c) => {
      code = c;
    },
  };
  // The order here is the order of --help.
  for (const add of [addGenkeyCommand, addRecordCommand, addTestkeyCommand, addPolicyCommands, addStoreCommands, addRotateCommand])
    add(ctx);

  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help' ? 0 : 2;
    }
    io.stderr(`inkan-keytool: ${(error as Error).message}\n`);
    return error instanceof GenkeyError ? error.exitCode : 1;
  }
  return code;
}
