import { performance } from 'node:perf_hooks';
import { runProgram, startPostfix } from '@inkan/testbed';

export interface PostfixRun {
  /** Messages a second until smtp-source had them all accepted. */
  acceptedPerSecond: number;
  /** Messages a second until the sink had them all. */
  deliveredPerSecond: number;
  /** Delivered messages that carry a DKIM-Signature. */
  signed: number;
}

/**
 * One Postfix end-to-end run: a private Postfix with `milter` (a Postfix socket spec) as its
 * smtpd milter, or none; smtp-source sends `count` messages of 4.6 KB over 10 sessions; timed
 * until the last one is delivered to the sink.
 */
export async function postfixRun(smtpSource: string, milter: string | undefined, count: number): Promise<PostfixRun> {
  const postfix = await startPostfix(milter ? { smtpdMilters: milter, mainCf: { non_smtpd_milters: '' } } : {});
  try {
    const start = performance.now();
    const args = [
      '-m',
      String(count),
      '-s',
      '10',
      '-l',
      '4600',
      '-f',
      'joe@example.org',
      '-t',
      'suzie@example.net',
      `127.0.0.1:${postfix.smtpPort}`,
    ];
    const r = await runProgram(smtpSource, args, { timeoutMs: 600_000 });
    if (r.code !== 0) throw new Error(`smtp-source: ${r.stderr}`);
    const accepted = performance.now();
    await postfix.waitForDelivered(count, 12_000);
    const delivered = performance.now();
    return {
      acceptedPerSecond: count / ((accepted - start) / 1000),
      deliveredPerSecond: count / ((delivered - start) / 1000),
      signed: postfix.sink.messages.filter((m) => /^DKIM-Signature:/m.test(m.data.toString('latin1'))).length,
    };
  } finally {
    await postfix.stop();
  }
}
