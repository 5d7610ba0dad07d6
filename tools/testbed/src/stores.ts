import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { findProgram, freePort, runProgram, tempDir, waitFor } from './process.js';

/**
 * Private PostgreSQL and Redis servers for tests: on 127.0.0.1 at a free port, data in a
 * temporary folder, started and stopped by the test itself (never the system's own service
 * on 5432 or 6379). Debian packages: postgresql, redis-server.
 */

interface Daemon {
  child: ChildProcess;
  output: () => string;
  exited: Promise<void>;
  isRunning: () => boolean;
}

function launch(command: string, args: string[]): Daemon {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let running = true;
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      running = false;
      resolve();
    });
    child.once('error', (error) => {
      output += `\n${error.message}`;
      running = false;
      resolve();
    });
  });
  return { child, output: () => output, exited, isRunning: () => running };
}

/** Send a signal, wait (bounded) for the exit, SIGKILL after `graceMs`. */
async function terminate(d: Daemon, signal: NodeJS.Signals, graceMs = 20_000): Promise<void> {
  if (!d.isRunning()) return;
  d.child.kill(signal);
  const timer = setTimeout(() => d.child.kill('SIGKILL'), graceMs);
  await d.exited;
  clearTimeout(timer);
}

const isRoot = () => process.getuid?.() === 0;

/** The PostgreSQL server programs: PG_BIN, else the newest /usr/lib/postgresql/N/bin, else PATH. */
function postgresBin(): string | undefined {
  if (process.env.PG_BIN && existsSync(join(process.env.PG_BIN, 'postgres'))) return process.env.PG_BIN;
  try {
    const versions = readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v) && existsSync(join('/usr/lib/postgresql', v, 'bin', 'postgres')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join('/usr/lib/postgresql', versions[0], 'bin');
  } catch {
    // not there
  }
  const initdb = findProgram('initdb');
  return initdb ? initdb.slice(0, -'/initdb'.length) : undefined;
}

/** Why the PostgreSQL tests cannot run here, or undefined when they can. */
export function postgresMissing(): string | undefined {
  const bin = postgresBin();
  if (!bin) return 'PostgreSQL is not installed (Debian package postgresql)';
  if (isRoot() && !findProgram('setpriv')) return 'setpriv (util-linux) is needed to run PostgreSQL as the postgres user';
  return undefined;
}

export interface PostgresServer {
  port: number;
  /** The superuser (postgres) password. */
  password: string;
  /** A postgresql:// URI on 127.0.0.1 at this server's port. */
  url(o?: { user?: string; password?: string; database?: string; query?: string }): string;
  /** Run SQL with psql as the superuser (or another user); rejects on any error. */
  psql(sql: string, o?: { user?: string; password?: string; database?: string }): Promise<string>;
  /** Stop the server (fast shutdown); the data stays for start(). */
  stop(): Promise<void>;
  /** Start it again on the same port with the same data. */
  start(): Promise<void>;
  /** Stop it and remove its data. */
  close(): Promise<void>;
  /** What it has logged. */
  output(): string;
}

/**
 * initdb and run a private PostgreSQL on 127.0.0.1:PORT (TCP only, no Unix socket),
 * password (scram) authentication, superuser postgres. As root, the server runs as the
 * postgres user (initdb refuses root) with a data folder owned by it.
 */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = postgresBin();
  const missing = postgresMissing();
  if (!bin || missing) throw new Error(missing ?? 'PostgreSQL is not installed');
  const port = await freePort();
  // As root the server runs as postgres, who must be able to reach the folder: under /tmp,
  // not under a TMPDIR that may sit in root's home.
  const dir = isRoot() && existsSync('/tmp') ? mkdtempSync('/tmp/inkan-pg-') : tempDir('inkan-pg-');
  const data = join(dir, 'data');
  const password = `pg-${Math.random().toString(36).slice(2)}`;
  mkdirSync(data, { mode: 0o700 });
  const pwfile = join(dir, 'pwfile');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  let asUser: string[] = [];
  if (isRoot()) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chmodSync(dir, 0o755);
    chownSync(data, uid, gid);
    chownSync(pwfile, uid, gid);
    asUser = [findProgram('setpriv') as string, '--reuid=postgres', '--regid=postgres', '--init-groups', '--'];
  }
  const run = (program: string, args: string[]) => {
    const argv = [...asUser, join(bin, program), ...args];
    return { command: argv[0] as string, args: argv.slice(1) };
  };
  const init = run('initdb', [
    '-D',
    data,
    '-U',
    'postgres',
    `--pwfile=${pwfile}`,
    '--auth-host=scram-sha-256',
    '--auth-local=scram-sha-256',
    '-E',
    'UTF8',
    '--locale=C',
    '--no-instructions',
  ]);
  const r = await runProgram(init.command, init.args, { timeoutMs: 120_000, cwd: dir });
  if (r.code !== 0) throw new Error(`initdb failed (${r.code}): ${r.stderr}${r.stdout}`);
  rmSync(pwfile);

  let server: Daemon | undefined;
  const start = async () => {
    const cmd = run('postgres', [
      '-D',
      data,
      '-p',
      String(port),
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
      '-c',
      'fsync=off',
      '-c',
      'synchronous_commit=off',
      '-c',
      'full_page_writes=off',
      '-c',
      'logging_collector=off',
      '-c',
      'max_connections=50',
    ]);
    const d = launch(cmd.command, cmd.args);
    server = d;
    try {
      await waitFor(
        () => {
          if (!d.isRunning()) throw new Error('exited');
          return /ready to accept connections/.test(d.output());
        },
        `PostgreSQL on port ${port}`,
        600,
        50,
      );
    } catch {
      await terminate(d, 'SIGKILL');
      throw new Error(`PostgreSQL did not start on port ${port}:\n${d.output()}`);
    }
  };
  const stop = async () => {
    if (server) await terminate(server, 'SIGINT');
  };
  await start();
  const psqlProgram = existsSync(join(bin, 'psql')) ? join(bin, 'psql') : (findProgram('psql') ?? 'psql');
  return {
    port,
    password,
    url: (o = {}) => {
      const user = encodeURIComponent(o.user ?? 'postgres');
      const pw = o.password ?? (o.user === undefined || o.user === 'postgres' ? password : undefined);
      return `postgresql://${user}${pw !== undefined ? `:${encodeURIComponent(pw)}` : ''}@127.0.0.1:${port}/${o.database ?? 'postgres'}${o.query ? `?${o.query}` : ''}`;
    },
    async psql(sql, o = {}) {
      const user = o.user ?? 'postgres';
      const res = await runProgram(
        psqlProgram,
        [
          '-X',
          '-q',
          '-v',
          'ON_ERROR_STOP=1',
          '-h',
          '127.0.0.1',
          '-p',
          String(port),
          '-U',
          user,
          '-d',
          o.database ?? 'postgres',
          '-At',
          '-f',
          '-',
        ],
        {
          input: sql,
          timeoutMs: 60_000,
          env: { ...process.env, PGPASSWORD: o.password ?? (user === 'postgres' ? password : ''), PGCONNECT_TIMEOUT: '5' },
        },
      );
      if (res.code !== 0) throw new Error(`psql failed (${res.code}): ${res.stderr}`);
      return res.stdout;
    },
    stop,
    start,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
    output: () => server?.output() ?? '',
  };
}

/** Why the Redis tests cannot run here, or undefined when they can. */
export function redisMissing(): string | undefined {
  return findProgram('redis-server') ? undefined : 'redis-server is not installed (Debian package redis-server)';
}

export interface RedisServer {
  port: number;
  /** A redis:// URI on 127.0.0.1 at this server's port. */
  url(o?: { user?: string; password?: string; db?: number; query?: string }): string;
  /** Stop it; with save (default), SHUTDOWN SAVE first writes the data for start(). */
  stop(o?: { save?: boolean }): Promise<void>;
  /** Start it again on the same port (with the data saved by stop()). */
  start(): Promise<void>;
  /** Stop it and remove its data. */
  close(): Promise<void>;
  output(): string;
}

/** One command in RESP to 127.0.0.1:port, as the default user; resolves with the raw reply. */
function respCommand(port: number, args: string[], timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no reply from Redis on ${port} to ${args[0]}`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`));
    socket.on('data', (d) => {
      reply += d.toString();
    });
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(reply);
    });
  });
}

/**
 * Run a private redis-server on 127.0.0.1:PORT: no snapshots or AOF of its own (data is
 * written only by stop({ save: true }), so that start() finds it again), ACL users from
 * `acl` lines ("user NAME on >password ~keys ..."), kept in an ACL file across restarts.
 */
export async function startRedis(options: { acl?: string[]; config?: string[] } = {}): Promise<RedisServer> {
  const program = findProgram('redis-server');
  if (!program) throw new Error('redis-server is not installed (Debian package redis-server)');
  const port = await freePort();
  const dir = tempDir('inkan-redis-');
  const aclFile = join(dir, 'users.acl');
  writeFileSync(aclFile, `${['user default on nopass ~* &* +@all', ...(options.acl ?? [])].join('\n')}\n`, { mode: 0o600 });
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--daemonize',
    'no',
    '--dir',
    dir,
    '--dbfilename',
    'dump.rdb',
    '--aclfile',
    aclFile,
    '--logfile',
    '',
    ...(options.config ?? []),
  ];
  let server: Daemon | undefined;
  const start = async () => {
    const d = launch(program, args);
    server = d;
    try {
      await waitFor(
        () => {
          if (!d.isRunning()) throw new Error('exited');
          return /Ready to accept connections/.test(d.output());
        },
        `Redis on port ${port}`,
        400,
        50,
      );
    } catch {
      await terminate(d, 'SIGKILL');
      throw new Error(`redis-server did not start on port ${port}:\n${d.output()}`);
    }
  };
  const stop = async (o: { save?: boolean } = {}) => {
    const d = server;
    if (!d?.isRunning()) return;
    if (o.save !== false) {
      await respCommand(port, ['SHUTDOWN', 'SAVE']).catch(() => '');
      const timer = setTimeout(() => d.child.kill('SIGKILL'), 20_000);
      await d.exited;
      clearTimeout(timer);
    } else await terminate(d, 'SIGTERM');
  };
  await start();
  return {
    port,
    url: (o = {}) => {
      const auth =
        o.user !== undefined ? `${encodeURIComponent(o.user)}${o.password !== undefined ? `:${encodeURIComponent(o.password)}` : ''}@` : '';
      return `redis://${auth}127.0.0.1:${port}/${o.db ?? 0}${o.query ? `?${o.query}` : ''}`;
    },
    stop,
    start,
    async close() {
      await stop({ save: false });
      rmSync(dir, { recursive: true, force: true });
    },
    output: () => server?.output() ?? '',
  };
}
