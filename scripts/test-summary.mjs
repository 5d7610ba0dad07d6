// Prints vitest's JSON report as one closing line: "tests: N passed, N failed, N skipped".
import { readFileSync } from 'node:fs';

const file = process.argv[2] ?? '.vitest-results.json';
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch (error) {
  console.log(`tests: 0 passed, 1 failed (no test report: ${error.message})`);
  process.exit(1);
}
const passed = report.numPassedTests ?? 0;
// A test file that failed outside its tests (a hook, an import) counts as one failure too;
// a file whose failures are its tests' is counted by those tests alone.
const files = Array.isArray(report.testResults) ? report.testResults : [];
const brokenFiles = files.filter((f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed')).length;
const failed = (report.numFailedTests ?? 0) + Math.max(brokenFiles, files.length === 0 ? (report.numRuntimeErrorTestSuites ?? 0) : 0);
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
