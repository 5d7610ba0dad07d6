import { describeActions, describeProtocol, type MilterResponse, runTransaction } from '@inkan/milter-protocol';
import { CliError, type Io, paint, readMessage } from './io.js';

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
      return r.value.length === 0 ? `delete header ${r.name} #${r.index}` : `change header ${r.name} #${r.index}: ${r.value.toString('latin1')}`;
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
        client: { hostname: o.clientName ?? `[${o.clientIp}]`, family: o.clientIp.includes(':') ? 'inet6' : 'inet', address: o.clientIp, port: 0 },
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
        negotiated: { version: result.options.version, actions: describeActions(result.options.actions), protocol: describeProtocol(result.options.protocol) },
        steps: result.steps.map((s) => ({ stage: s.stage, reply: s.reply?.type ?? null, ...(s.recipient ? { recipient: s.recipient } : {}) })),
        modifications: (eom?.modifications ?? []).map((m) => describeResponse(m)),
        outcome: { stage: result.outcome.stage, reply: describeResponse(result.outcome.reply) },
      })}\n`,
    );
  } else {
    const c = io.stdoutTty;
    io.stdout(`${paint(c, 'bold', 'negotiated')}: milter protocol ${result.options.version}\n`);
    io.stdout(`  actions:  ${describeActions(result.options.actions)}\n  protocol: ${describeProtocol(result.options.protocol)}\n`);
    io.stdout(`${paint(c, 'bold', 'steps')}:\n`);
    for (const s of result.steps) io.stdout(`  ${s.stage.padEnd(13)} ${s.recipient ? `${s.recipient} ` : ''}${describeResponse(s.reply)}\n`);
    if (eom) {
      io.stdout(`${paint(c, 'bold', 'end of message')}: ${eom.progress} progress packet(s)\n`);
      for (const m of eom.modifications) io.stdout(`  ${describeResponse(m)}\n`);
    }
    io.stdout(`${paint(c, 'bold', 'outcome')}: ${describeResponse(result.outcome.reply)} (at ${result.outcome.stage})\n`);
  }
  return 0;
}
