// ref.js runs Hugging Face's Rust tokenizers library (npm "tokenizers", the
// reference) for the Go tests and benchmarks of package tokenizer.
//
//   node ref.js TOKENIZER_JSON < request.json > response.json
//
// request:  {"encode": [text...], "decode": [[id...]...], "bench": {"text": s, "seconds": 1}}
// response: {"encode": [[id...]...], "decode": [text...], "bench": {"tokens": n, "seconds": s}}
//
// Encoding never adds special tokens; decoding keeps them. The package is found
// through NODE_PATH (scripts/testdeps-npm.sh installs it).
'use strict';
const fs = require('fs');
const { Tokenizer } = require('tokenizers');

async function main() {
  const tok = Tokenizer.fromFile(process.argv[2]);
  const req = JSON.parse(fs.readFileSync(0, 'utf8'));
  const res = { encode: [], decode: [] };
  for (const text of req.encode || []) {
    const enc = await tok.encode(text, null, { addSpecialTokens: false });
    res.encode.push(Array.from(enc.getIds()));
  }
  for (const ids of req.decode || []) {
    res.decode.push(await tok.decode(ids, false));
  }
  if (req.bench) {
    const { text, seconds } = req.bench;
    await tok.encode(text, null, { addSpecialTokens: false }); // warm up
    let tokens = 0;
    const t0 = process.hrtime.bigint();
    let el = 0;
    while (el < seconds) {
      const enc = await tok.encode(text, null, { addSpecialTokens: false });
      tokens += enc.getIds().length;
      el = Number(process.hrtime.bigint() - t0) / 1e9;
    }
    res.bench = { tokens, seconds: el };
  }
  process.stdout.write(JSON.stringify(res));
}

main().catch((e) => { console.error(e); process.exit(1); });
