import { createRequire } from 'node:module';
import type * as IORedis from 'ioredis';
import type * as Pg from 'pg';

/**
 * pg and ioredis are optional peer dependencies of @inkan/keytool: only a store needs them, so
 * they are loaded when one is opened, from where @inkan/keytool is installed (a global install
 * finds a globally installed driver too), never when the package or its CLI is merely loaded.
 */
const requireDriver = createRequire(import.meta.url);

/** A store was opened whose driver package is not installed. */
export class MissingDriverError extends Error {
  readonly packageName: string;
  constructor(packageName: 'pg' | 'ioredis', scheme: string) {
    super(
      `a ${scheme} store needs the ${packageName} package, which is not installed: ` +
        `npm install ${packageName} where @inkan/keytool is installed (npm install -g ${packageName} if it was installed with -g)`,
    );
    this.name = 'MissingDriverError';
    this.packageName = packageName;
  }
}

function load<T>(packageName: 'pg' | 'ioredis', scheme: string): T {
  try {
    return requireDriver(packageName) as T;
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    // Only the package itself missing; a broken install of it (one of its own files or
    // dependencies missing) is reported as it is.
    if (e.code === 'MODULE_NOT_FOUND' && e.message.startsWith(`Cannot find module '${packageName}'`)) throw new MissingDriverError(packageName, scheme);
    throw error;
  }
}

export function loadPg(): typeof Pg {
  return load<typeof Pg>('pg', 'postgresql://');
}

export function loadIoredis(): typeof IORedis {
  return load<typeof IORedis>('ioredis', 'redis://');
}
