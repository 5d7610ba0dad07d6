import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';

const FACILITIES: Record<string, number> = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9, authpriv: 10, ftp: 11,
  local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
};

/** pino levels to syslog severities. */
function severity(level: number): number {
  if (level >= 60) return 2; // fatal -> crit
  if (level >= 50) return 3; // error -> err
  if (level >= 40) return 4; // warn -> warning
  if (level >= 30) return 6; // info -> info
  return 7; // debug, trace
}

/**
 * A stream that hands each log line to the system's syslog through logger(1), with its
 * own priority ("<PRI>" prefix): Node cannot write to the /dev/log datagram socket itself.
 */
function syslogStream(facility: string, tag: string): Writable {
  const code = FACILITIES[facility];
  if (code === undefined) throw new Error(`unknown syslog facility "${facility}"`);
  const child = spawn('logger', ['--prio-prefix', '--socket-errors=off', '-t', tag, '--id', String(process.pid)], { stdio: ['pipe', 'ignore', 'inherit'] });
  child.stdin.on('error', () => {});
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        let text = line;
        let level = 30;
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          level = Number(entry.level ?? 30);
          const { level: _l, time: _t, pid: _p, hostname: _h, msg, ...rest } = entry;
          text = `${msg ?? ''}${Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : ''}`;
        } catch {
          // not JSON: pass as is
        }
        child.stdin.write(`<${code * 8 + severity(level)}>${text.replace(/\n/g, ' ')}\n`);
      }
      callback();
    },
  });
}

export interface LogOptions {
  syslog: boolean;
  facility: string;
  level?: string;
}

/** JSON lines on stdout by default; syslog (facility mail) with -l / Syslog yes. */
export function createLogger(options: LogOptions): Logger {
  const level = options.level ?? process.env.INKAN_LOG_LEVEL ?? 'info';
  const base = { name: 'inkan-milterd' };
  return options.syslog ? pino({ level, base }, syslogStream(options.facility, 'inkan-milterd')) : pino({ level, base });
}
