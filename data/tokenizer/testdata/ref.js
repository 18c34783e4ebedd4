// ref.js runs Hugging Face's Rust tokenizers library (npm "tokenizers", the
// reference) for the Go tests and benchmarks of package tokenizer.
//
//   node ref.js TOKENIZER_JSON < request.json > response.json
//
// request:  {"encode": [text...], "encode_special": [text...], "decode": [[id...]...],
//            "normalize": {"form": "NFC", "texts": [text...]}, "bench": {"text": s, "seconds": 1}}
// response: {"encode": [[id...]...], "encode_special": [[id...]...], "decode": [text...],
//            "normalize": [text...], "bench": {"tokens": n, "seconds": s}}
//
// "encode" adds no special tokens; "encode_special" adds them as the file's
// post_processor says (add_special_tokens=True); decoding keeps them.
// "normalize" runs the library's NFC/NFD/NFKC/NFKD normalizer alone (the
// tokenizer file is still loaded but unused). The package is found through
// NODE_PATH (scripts/testdeps-npm.sh installs it).
'use strict';
const fs = require('fs');
const { Tokenizer, nfcNormalizer, nfdNormalizer, nfkcNormalizer, nfkdNormalizer } = require('tokenizers');

async function main() {
  const tok = Tokenizer.fromFile(process.argv[2]);
  const req = JSON.parse(fs.readFileSync(0, 'utf8'));
  const res = { encode: [], encode_special: [], decode: [], normalize: [] };
  for (const text of req.encode || []) {
    const enc = await tok.encode(text, null, { addSpecialTokens: false });
    res.encode.push(Array.from(enc.getIds()));
  }
  for (const text of req.encode_special || []) {
    const enc = await tok.encode(text, null, { addSpecialTokens: true });
    res.encode_special.push(Array.from(enc.getIds()));
  }
  if (req.normalize) {
    const forms = { NFC: nfcNormalizer, NFD: nfdNormalizer, NFKC: nfkcNormalizer, NFKD: nfkdNormalizer };
    const n = forms[req.normalize.form]();
    for (const text of req.normalize.texts) res.normalize.push(n.normalizeString(text));
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
