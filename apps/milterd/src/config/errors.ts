/** A configuration problem, naming where it was found (file and line, or the flag). */
export class ConfigError extends Error {
  readonly source: string;

  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'ConfigError';
    this.source = source;
  }
}
