import { createRequire } from 'node:module';
import type * as IORedis from 'ioredis';
import type * as Pg from 'pg';
import { MissingDriverError } from './missing-driver.js';

/**
 * pg and ioredis are optional peer dependencies of @inkan/keytool: only a store needs them, so
 * they are loaded when one is opened, from where @inkan/keytool is installed (a global install
 * finds a globally installed driver too), never when the package or its CLI is merely loaded.
 */
const requireDriver = createRequire(import.meta.url);

function load<T>(packageName: 'pg' | 'ioredis', scheme: string): T {
  try {
    return requireDriver(packageName) as T;
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    // Only the package itself missing; a broken install of it (one of its own files or
    // dependencies missing) is reported as it is.
    if (e.code === 'MODULE_NOT_FOUND' && e.message.startsWith(`Cannot find module '${packageName}'`))
      throw new MissingDriverError(packageName, scheme);
    throw error;
  }
}

export function loadPg(): typeof Pg {
  return load<typeof Pg>('pg', 'postgresql://');
}

export function loadIoredis(): typeof IORedis {
  return load<typeof IORedis>('ioredis', 'redis://');
}
