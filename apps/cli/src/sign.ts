import { Option } from 'commander';
import {
  type PrivateKeyInfo,
  parsePrivateKey,
  readPrivateKey,
  type SignatureOptions,
  type SigningAlgorithm,
  signMessage,
} from '@inkan/dkim-core';
import { CliError, type Io, readMessage } from './io.js';
import { type CommandContext, collect, list } from './options.js';

export interface SignCommandOptions {
  domain: string;
  selector: string[];
  key: string[];
  /** Take the keys from a shared store (postgresql:// or redis://) instead of files. */
  store?: string;
  algorithm?: SigningAlgorithm;
  canonicalization?: string;
  headers?: string[];
  oversign?: string[];
}

/** The domain's usable keys in a shared store (all of them, or those of the given selectors). */
async function keysFromStore(uri: string, domain: string, selectors: string[]): Promise<{ selector: string; pem: string }[]> {
  const { openKeyStore } = await import('@inkan/keytool/store');
  let store: ReturnType<typeof openKeyStore>;
  try {
    store = openKeyStore(uri);
  } catch (error) {
    throw new CliError(`--store: ${(error as Error).message}`);
  }
  try {
    const snapshot = await store.snapshot({ privateKeys: true });
    const wanted = domain.toLowerCase().replace(/\.$/, '');
    const keys = snapshot.keys
      .filter((k) => k.domain?.toLowerCase() === wanted && k.selector && k.privateKey && !k.retiredAt)
      .filter((k) => selectors.length === 0 || selectors.includes(k.selector as string))
      .map((k) => ({ selector: k.selector as string, pem: k.privateKey as string }));
    if (keys.length === 0)
      throw new CliError(
        `${store.location.display} holds no usable key for ${domain}${selectors.length ? ` with selector ${selectors.join(', ')}` : ''}`,
      );
    return keys;
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(`--store ${store.location.display}: ${(error as Error).message}`);
  } finally {
    await store.close();
  }
}

/** A key from dkim-core's loader; its refusal (naming the file or the row, never the key) as a CliError. */
async function cliKey(load: () => PrivateKeyInfo | Promise<PrivateKeyInfo>): Promise<PrivateKeyInfo> {
  try {
    return await load();
  } catch (error) {
    throw new CliError((error as Error).message);
  }
}

/** `inkan sign`: the message with DKIM-Signature fields in front, one per --selector/--key pair. */
export async function signCommand(file: string | undefined, o: SignCommandOptions, io: Io): Promise<number> {
  const fromStore = o.store ? await keysFromStore(o.store, o.domain, o.selector) : undefined;
  if (!fromStore && o.selector.length !== o.key.length)
    throw new CliError(`give one --key per --selector (${o.selector.length} selectors, ${o.key.length} keys)`);
  if (!fromStore && o.selector.length === 0) throw new CliError('give --selector and --key, or --store');
  const specs: SignatureOptions[] = [];
  for (const { selector, pem } of fromStore ?? []) {
    specs.push({
      domain: o.domain,
      selector,
      privateKey: (await cliKey(() => parsePrivateKey(pem, `the key of selector ${selector} in the store`))).key,
      ...(o.canonicalization ? { canonicalization: o.canonicalization } : {}),
      ...(o.headers ? { headers: o.headers } : {}),
      ...(o.oversign ? { oversignHeaders: o.oversign } : {}),
    });
  }
  for (const [i, keyFile] of (fromStore ? [] : o.key).entries()) {
    specs.push({
      domain: o.domain,
      selector: o.selector[i] as string,
      privateKey: (await cliKey(() => readPrivateKey(keyFile))).key,
      ...(o.algorithm && o.key.length === 1 ? { algorithm: o.algorithm } : {}),
      ...(o.canonicalization ? { canonicalization: o.canonicalization } : {}),
      ...(o.headers ? { headers: o.headers } : {}),
      ...(o.oversign ? { oversignHeaders: o.oversign } : {}),
    });
  }
  const message = await readMessage(file ?? '-', io);
  let fields: string;
  try {
    fields = await signMessage(message, specs);
  } catch (error) {
    throw new CliError((error as Error).message);
  }
  io.stdout(Buffer.concat([Buffer.from(fields, 'latin1'), message]));
  return 0;
}

/** `inkan sign`: its options and help. */
export function addSignCommand({ program, io, setExitCode }: CommandContext): void {
  program
    .command('sign')
    .description('print the message signed (stdin when no file is named)')
    .argument('[file]', 'the message')
    .requiredOption('-d, --domain <domain>', 'signing domain (d=)')
    .option('-s, --selector <name>', 'selector; repeat with --key to sign more than once', collect)
    .option('-k, --key <file>', 'private key (PEM) for the selector at the same position', collect)
    .option(
      '--store <uri>',
      'take the keys of the domain (or of the --selector given) from a shared store: postgresql://... or redis://...',
    )
    .addOption(
      new Option('-a, --algorithm <alg>', 'rsa-sha256 or ed25519-sha256 (default: from the key)').choices(['rsa-sha256', 'ed25519-sha256']),
    )
    .option('-c, --canonicalization <c>', 'header/body canonicalization', 'relaxed/relaxed')
    .option('--headers <list>', 'fields to sign when present (comma list)', list)
    .option('--oversign <list>', 'fields to list once more than they occur (default: from)', list)
    .addHelpText(
      'after',
      `
Examples:
  $ inkan sign -d example.org -s hoge -k hoge.private message.eml > signed.eml
  $ inkan sign -d example.org -s rsa2026 -k rsa.private -s ed2026 -k ed.private message.eml
  $ inkan sign -d example.org --store redis://127.0.0.1:6379/0?prefix=inkan: message.eml`,
    )
    .action(async (file: string | undefined, o) => {
      const options: SignCommandOptions = {
        domain: o.domain,
        selector: o.selector ?? [],
        key: o.key ?? [],
        ...(o.store ? { store: o.store } : {}),
        ...(o.algorithm ? { algorithm: o.algorithm } : {}),
        canonicalization: o.canonicalization,
        ...(o.headers ? { headers: o.headers } : {}),
        ...(o.oversign ? { oversign: o.oversign } : {}),
      };
      setExitCode(await signCommand(file, options, io));
    });
}
