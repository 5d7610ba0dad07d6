import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findProgram, runProgram, tempDir } from '@inkan/testbed';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MilterError, type MilterListener, type MilterServer, createMilterServer } from '../src/index.js';
import { type TestFilterLog, newLog, testFilter } from './fixtures/test-filter.js';
import { until } from './helpers.js';

const miltertest = findProgram('miltertest');
if (!miltertest) console.warn('skipping the miltertest tests: miltertest is not installed (Debian package miltertest)');
const script = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'miltertest.lua');

describe.skipIf(!miltertest && process.env.CI !== 'true').each(['unix', 'inet'] as const)(
  'miltertest drives the test filter (%s socket)',
  (kind) => {
    let server: MilterServer;
    let listener: MilterListener;
    let dir: string;
    const log: TestFilterLog = newLog();
    const errors: MilterError[] = [];

    beforeAll(async () => {
      server = createMilterServer(testFilter('miltertest', log));
      server.on('sessionError', (e) => errors.push(e));
      dir = tempDir('inkan-mt-');
      listener = await server.listen(
        kind === 'unix' ? { kind: 'unix', path: join(dir, 'milter.sock') } : { kind: 'inet', host: '127.0.0.1', port: 0 },
      );
    });

    afterAll(async () => {
      await server?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('passes every mt.* check of the Lua script and exits 0', async () => {
      const r = await runProgram(miltertest as string, ['-D', `sock=${listener.address}`, '-D', 'label=miltertest', '-s', script], {
        timeoutMs: 60_000,
      });
      expect(r.code, `miltertest output:\n${r.stdout}${r.stderr}`).toBe(0);
      expect(r.stdout).toContain('miltertest: all checks passed');

      // what the filter saw on its side
      await until(() => log.closes === 1, 'the connection to close');
      expect(log.options[0]).toMatchObject({ version: 6, offer: { version: 6, actions: 0x1ff, protocol: 0x1fffff } });
      expect(log.messages.map((m) => [m.sender, m.recipients, m.queueId])).toEqual([
        ['alice@example.org', ['bob@example.net', 'carol+reject@example.net', 'deleted@example.net'], 'MT0001'],
        ['dave@example.org', ['erin@example.net'], 'MT0002'],
        // miltertest sent no macros for this MAIL: as in libmilter, a stage's macros stay until
        // the MTA replaces them (real MTAs send a macro packet before every MAIL)
        ['heidi@example.org', ['ivan@example.net'], 'MT0002'],
      ]);
      expect(log.messages[0]?.headers.find((h) => h.name === 'Subject')?.value).toBe(' first message');
      expect(log.messages[0]?.bodyBytes).toBe('Hello from miltertest.\r\nSecond line.\r\n'.length);
      expect(log.aborts).toBe(1);
      expect(errors).toEqual([]);
    });
  },
);
