import { describeActions, describeProtocol, type MilterResponse, runTransaction } from '@inkan/milter-protocol';
import { CliError, type Io, paint, readMessage } from './io.js';
import { type CommandContext, collect, positive } from './options.js';

export interface MilterTestOptions {
  socket: string;
  from: string;
  rcpt: string[];
  clientIp: string;
  clientName?: string;
  helo: string;
  auth?: string;
  queueId: string;
  json?: boolean;
  timeout: number;
}

function describeResponse(r: MilterResponse | undefined): string {
  if (!r) return '(no reply expected)';
  switch (r.type) {
    case 'replyCode':
      return `reply ${r.text}`;
    case 'addHeader':
      return `add header ${r.name}:${r.value.toString('latin1').replace(/\r?\n/g, '\n    ')}`;
    case 'insertHeader':
      return `insert header at ${r.index}: ${r.name}:${r.value.toString('latin1').replace(/\r?\n/g, '\n    ')}`;
    case 'changeHeader':
      return r.value.length === 0
        ? `delete header ${r.name} #${r.index}`
        : `change header ${r.name} #${r.index}: ${r.value.toString('latin1')}`;
    case 'quarantine':
      return `quarantine: ${r.reason}`;
    case 'changeFrom':
      return `change sender to ${r.sender}${r.args ? ` ${r.args}` : ''}`;
    case 'addRcpt':
      return `add recipient ${r.recipient}`;
    case 'delRcpt':
      return `delete recipient ${r.recipient}`;
    case 'replaceBody':
      return `replace body (${r.chunk.length} bytes)`;
    default:
      return r.type;
  }
}

/** `inkan milter-test`: one full transaction against a running milter, every step printed. */
export async function milterTestCommand(file: string, o: MilterTestOptions, io: Io): Promise<number> {
  const message = await readMessage(file, io);
  const mailMacros: Record<string, string> = { i: o.queueId };
  if (o.auth) Object.assign(mailMacros, { '{auth_authen}': o.auth, '{auth_type}': 'PLAIN' });
  let result: Awaited<ReturnType<typeof runTransaction>>;
  try {
    result = await runTransaction(
      o.socket,
      {
        client: {
          hostname: o.clientName ?? `[${o.clientIp}]`,
          family: o.clientIp.includes(':') ? 'inet6' : 'inet',
          address: o.clientIp,
          port: 0,
        },
        helo: o.helo,
        sender: o.from,
        recipients: o.rcpt,
        message,
        macros: { C: { j: 'inkan-milter-test', '{daemon_name}': 'inkan' }, M: mailMacros, N: { i: o.queueId }, E: { i: o.queueId } },
      },
      { timeoutMs: o.timeout },
    );
  } catch (error) {
    throw new CliError(`milter-test: ${(error as Error).message}`);
  }
  const eom = result.endOfMessage;
  if (o.json) {
    io.stdout(
      `${JSON.stringify({
        negotiated: {
          version: result.options.version,
          actions: describeActions(result.options.actions),
          protocol: describeProtocol(result.options.protocol),
        },
        steps: result.steps.map((s) => ({
          stage: s.stage,
          reply: s.reply?.type ?? null,
          ...(s.recipient ? { recipient: s.recipient } : {}),
        })),
        modifications: (eom?.modifications ?? []).map((m) => describeResponse(m)),
        outcome: { stage: result.outcome.stage, reply: describeResponse(result.outcome.reply) },
      })}\n`,
    );
  } else {
    const c = io.stdoutTty;
    io.stdout(`${paint(c, 'bold', 'negotiated')}: milter protocol ${result.options.version}\n`);
    io.stdout(`  actions:  ${describeActions(result.options.actions)}\n  protocol: ${describeProtocol(result.options.protocol)}\n`);
    io.stdout(`${paint(c, 'bold', 'steps')}:\n`);
    for (const s of result.steps)
      io.stdout(`  ${s.stage.padEnd(13)} ${s.recipient ? `${s.recipient} ` : ''}${describeResponse(s.reply)}\n`);
    if (eom) {
      io.stdout(`${paint(c, 'bold', 'end of message')}: ${eom.progress} progress packet(s)\n`);
      for (const m of eom.modifications) io.stdout(`  ${describeResponse(m)}\n`);
    }
    io.stdout(`${paint(c, 'bold', 'outcome')}: ${describeResponse(result.outcome.reply)} (at ${result.outcome.stage})\n`);
  }
  return 0;
}

/** `inkan milter-test`: its options and help. */
export function addMilterTestCommand({ program, io, setExitCode }: CommandContext): void {
  program
    .command('milter-test')
    .description('drive a running milter through one full transaction and print what it does')
    .argument('<file>', 'the message ("-" for stdin)')
    .requiredOption('--socket <spec>', 'the milter: inet:port@host, unix:/path, inet:host:port')
    .option('--from <address>', 'envelope sender', 'sender@example.org')
    .option('--rcpt <address>', 'recipient (repeatable)', collect)
    .option('--client-ip <ip>', 'the SMTP client the milter is told about', '127.0.0.1')
    .option('--client-name <host>', 'its host name (default: [ip])')
    .option('--helo <name>', 'HELO name', 'client.example.org')
    .option('--auth <user>', 'pretend the client authenticated as this user ({auth_authen})')
    .option('--queue-id <id>', 'the {i} macro', 'INKANTEST')
    .option('--timeout <ms>', 'milliseconds to wait for each reply', positive('--timeout'), 30_000)
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ inkan milter-test --socket inet:8891@127.0.0.1 message.eml
  $ inkan milter-test --socket unix:/var/run/milter/dkim --client-ip 192.0.2.7 --rcpt postmaster@example.org inbound.eml`,
    )
    .action(async (file: string, o) => {
      const options: MilterTestOptions = {
        socket: o.socket,
        from: o.from,
        rcpt: o.rcpt ?? ['recipient@example.net'],
        clientIp: o.clientIp,
        ...(o.clientName ? { clientName: o.clientName } : {}),
        helo: o.helo,
        ...(o.auth ? { auth: o.auth } : {}),
        queueId: o.queueId,
        json: !!o.json,
        timeout: o.timeout,
      };
      setExitCode(await milterTestCommand(file, options, io));
    });
}
