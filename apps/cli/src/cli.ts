import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { addArCommand } from './ar.js';
import { type Io, processIo } from './io.js';
import { addKeytoolCommands } from './keytool.js';
import { addMilterTestCommand } from './milter-test.js';
import type { CommandContext } from './options.js';
import { addSelftestCommand } from './selftest.js';
import { addSignCommand } from './sign.js';
import { addVerifyCommand } from './verify.js';

const version = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();

/** The `inkan` command line. Returns the exit status: 0 ok, 1 a check failed, 2 usage or I/O error. */
export async function main(argv: string[], io: Io = processIo): Promise<number> {
  let code = 0;
  const program = new Command('inkan')
    .description('Sign, verify and inspect DKIM mail at the terminal, and test a running milter.')
    .version(version, '-V, --version')
    .configureOutput({ writeOut: (t) => io.stdout(t), writeErr: io.stderr })
    .exitOverride()
    .showHelpAfterError('(add --help for usage)');
  const ctx: CommandContext = {
    program,
    io,
    setExitCode: (c) => {
      code = c;
    },
  };
  // The order here is the order of --help.
  for (const add of [addVerifyCommand, addSignCommand, addKeytoolCommands, addMilterTestCommand, addSelftestCommand, addArCommand])
    add(ctx);

  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help' ? 0 : 2;
    }
    io.stderr(`inkan: ${(error as Error).message}\n`);
    return 2;
  }
  return code;
}
