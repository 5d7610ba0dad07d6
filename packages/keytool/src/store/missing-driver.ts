/**
 * Kept apart from the loaders (drivers.ts) so that the published type declarations of the store
 * never name pg's or ioredis's types: a TypeScript user without those packages (or without
 * @types/pg) type-checks cleanly, skipLibCheck or not.
 */

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
