/**
 * Every committed seed and every input that once crashed a target (tools/fuzz/regressions/
 * <target>/) runs through its target again: none may crash now.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { dirs, readInputs } from '../src/engine/files.js';
import type { FuzzTarget } from '../src/target.js';
import { TARGET_NAMES, loadTarget } from '../src/targets/index.js';

for (const name of TARGET_NAMES) {
  describe(`fuzz target ${name}`, () => {
    let target: FuzzTarget;
    beforeAll(async () => {
      target = await loadTarget(name);
      await target.setup?.();
    });
    afterAll(async () => {
      await target?.teardown?.();
    });

    const inputs = [
      ...readInputs(dirs.corpus(name)).map((f) => ({ ...f, kind: 'seed' })),
      ...readInputs(dirs.regressions(name)).map((f) => ({ ...f, kind: 'regression' })),
    ];
    it('has seeds', () => {
      if (!inputs.some((i) => i.kind === 'seed')) throw new Error(`no seeds in ${dirs.corpus(name)}`);
    });
    for (const input of inputs) {
      it(`${input.kind} ${input.name} (${input.data.length} bytes) does not crash`, async () => {
        await target.fuzz(input.data);
      });
    }
  });
}
