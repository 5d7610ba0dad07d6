import { readFile } from 'node:fs/promises';
import { createPrivateKey } from 'node:crypto';
import { type SignatureOptions, type SigningAlgorithm, signMessage } from '@inkan/dkim-core';
import { CliError, type Io, readMessage } from './io.js';

export interface SignCommandOptions {
  domain: string;
  selector: string[];
  key: string[];
  algorithm?: SigningAlgorithm;
  canonicalization?: string;
  headers?: string[];
  oversign?: string[];
}

/** `inkan sign`: the message with DKIM-Signature fields in front, one per --selector/--key pair. */
export async function signCommand(file: string | undefined, o: SignCommandOptions, io: Io): Promise<number> {
  if (o.selector.length !== o.key.length) throw new CliError(`give one --key per --selector (${o.selector.length} selectors, ${o.key.length} keys)`);
  const specs: SignatureOptions[] = [];
  for (const [i, keyFile] of o.key.entries()) {
    let pem: string;
    try {
      pem = await readFile(keyFile, 'utf8');
    } catch (error) {
      throw new CliError(`cannot read ${keyFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    let privateKey: ReturnType<typeof createPrivateKey>;
    try {
      privateKey = createPrivateKey(pem);
    } catch {
      throw new CliError(`${keyFile} does not hold a PEM private key`);
    }
    specs.push({
      domain: o.domain,
      selector: o.selector[i] as string,
      privateKey,
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
