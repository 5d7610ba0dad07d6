import { main as keytool } from '@inkan/keytool';
import type { CommandContext } from './options.js';

/** `inkan keygen` and `inkan testkey`: inkan-keytool's genkey and testkey, their arguments passed on as they are. */
export function addKeytoolCommands({ program, io, setExitCode }: CommandContext): void {
  for (const [name, sub, about] of [
    ['keygen', 'genkey', 'generate a key pair and its DNS record (inkan-keytool genkey)'],
    ['testkey', 'testkey', 'check the record DNS serves for a selector (inkan-keytool testkey)'],
  ] as const) {
    program
      .command(name)
      .description(about)
      .allowUnknownOption()
      .helpOption(false)
      .argument('[args...]')
      .action(async (args: string[]) => {
        setExitCode(await keytool(['node', 'inkan-keytool', sub, ...args], { stdout: (t) => io.stdout(t), stderr: io.stderr }));
      });
  }
}
