// render.js renders chats with a model's Jinja chat_template (through the
// @lenml/tokenizers port of transformers.js) and tokenizes the text with
// Hugging Face's Rust tokenizers library (npm "tokenizers"), the reference for
// the Go tests of package chat.
//
//   node render.js TOKENIZER_JSON TOKENIZER_CONFIG_JSON [TEMPLATE_FILE] < cases.json
//
// cases:  [{"messages": [...], "add_generation_prompt": bool, "enable_thinking": bool|null}]
// output: [{"text": s, "ids": [id...]}]
//
// TEMPLATE_FILE, when given, replaces the chat_template of the config. The
// packages are found through NODE_PATH (scripts/testdeps-npm.sh installs them).
'use strict';
const fs = require('fs');
const { Tokenizer } = require('tokenizers');
const { TokenizerLoader } = require('@lenml/tokenizers');

async function main() {
  const [tokPath, cfgPath, tmplPath] = process.argv.slice(2);
  const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
  if (tmplPath) cfg.chat_template = fs.readFileSync(tmplPath, 'utf8');
  const js = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(tokPath, 'utf8')),
    tokenizerConfig: cfg,
  });
  const rust = Tokenizer.fromFile(tokPath);
  const cases = JSON.parse(fs.readFileSync(0, 'utf8'));
  const out = [];
  for (const c of cases) {
    const kw = { tokenize: false, add_generation_prompt: !!c.add_generation_prompt };
    if (c.enable_thinking !== undefined && c.enable_thinking !== null) kw.enable_thinking = c.enable_thinking;
    const text = js.apply_chat_template(c.messages, kw);
    const enc = await rust.encode(text, null, { addSpecialTokens: false });
    out.push({ text, ids: Array.from(enc.getIds()) });
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
