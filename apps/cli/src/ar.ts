import { parseAuthenticationResults, splitMessage } from '@inkan/dkim-core';
import { type Io, paint, readMessage } from './io.js';
import type { CommandContext } from './options.js';

/** `inkan ar`: the Authentication-Results fields of a message, as a table or JSON. */
export async function arCommand(file: string | undefined, o: { json?: boolean }, io: Io): Promise<number> {
  const message = await readMessage(file ?? '-', io);
  const fields = splitMessage(message).headers.filter((h) => h.name.toLowerCase() === 'authentication-results');
  const parsed = fields.map((f) => {
    const value = f.raw.toString('latin1').slice(f.raw.indexOf(0x3a) + 1);
    return { raw: value.trim(), parsed: parseAuthenticationResults(value) };
  });
  if (o.json) {
    io.stdout(`${JSON.stringify(parsed.map((p) => p.parsed ?? { unreadable: p.raw.replace(/\r\n/g, '') }))}\n`);
    return 0;
  }
  if (parsed.length === 0) {
    io.stdout('no Authentication-Results field\n');
    return 0;
  }
  const rows: string[][] = [];
  for (const p of parsed) {
    if (!p.parsed) {
      rows.push(['?', '?', 'unreadable', '', p.raw.replace(/\s+/g, ' ').slice(0, 60)]);
      continue;
    }
    if (p.parsed.results.length === 0) rows.push([p.parsed.authservId, '-', 'none', '', '']);
    for (const r of p.parsed.results) {
      rows.push([
        p.parsed.authservId,
        r.method,
        r.result,
        r.reason ?? (r.comments ?? []).join('; '),
        r.properties.map((x) => `${x.ptype}.${x.property}=${x.value}`).join(' '),
      ]);
    }
  }
  const head = ['authserv-id', 'method', 'result', 'reason', 'properties'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const color = io.stdoutTty;
  io.stdout(
    `${paint(
      color,
      'bold',
      head
        .map((h, i) => h.padEnd(widths[i] as number))
        .join('  ')
        .trimEnd(),
    )}\n`,
  );
  for (const r of rows) {
    const cells = r.map((c, i) => c.padEnd(widths[i] as number));
    cells[2] = paint(color, r[2] === 'pass' ? 'green' : r[2] === 'fail' ? 'red' : 'yellow', cells[2] as string);
    io.stdout(`${cells.join('  ').trimEnd()}\n`);
  }
  return 0;
}

/** `inkan ar`: its options and help. */
export function addArCommand({ program, io, setExitCode }: CommandContext): void {
  program
    .command('ar')
    .description('show the Authentication-Results fields of a message as a table')
    .argument('[file]', 'the message (stdin when absent)')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ inkan ar received.eml')
    .action(async (file: string | undefined, o) => {
      setExitCode(await arCommand(file, { json: !!o.json }, io));
    });
}
