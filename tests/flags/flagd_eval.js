// Evaluate one flag of a flagd JSON document with the real @openfeature/flagd-core
// for every key on stdin (one per line); print the variant per line, exactly
// like `iac-flags-eval eval` does. Used by test_flagd_compat.sh.
//   node flagd_eval.js FLAGD.json FLAG [ATTR]   (NODE_PATH points at node_modules)
'use strict';
const fs = require('fs');
const { FlagdCore, MemoryStorage } = require('@openfeature/flagd-core');

const [file, flag, attr] = process.argv.slice(2);
const text = fs.readFileSync(file, 'utf8');
const quietLog = { debug() {}, info() {}, warn() {}, error() {} };
// Strict: the document must pass flagd's JSON schemas (flags + targeting),
// not only evaluate.
const storage = new MemoryStorage(quietLog);
storage.setConfigurations(text, true);
const core = new FlagdCore(storage, quietLog);
const doc = JSON.parse(text);
const variants = doc.flags[flag].variants;
const type = typeof variants[Object.keys(variants)[0]];
const quiet = quietLog;
const keys = fs.readFileSync(0, 'utf8').split('\n');
if (keys.length && keys[keys.length - 1] === '') keys.pop();
const out = [];
for (const k of keys) {
  const ctx = { targetingKey: k };
  if (attr) ctx[attr] = k;
  const r = core.resolve(type, flag, undefined, ctx, quiet);
  if (r.reason === 'DISABLED') out.push('(disabled)');
  else if (r.errorCode) out.push('(error: ' + r.errorCode + ')');
  else out.push(r.variant);
}
process.stdout.write(out.join('\n') + '\n');
