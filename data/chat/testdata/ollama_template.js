// ollama_template.js prints the Jinja chat template that @huggingface/ollama-utils
// records for a model of the Ollama library: the chat_template of the model's
// tokenizer_config.json as llama.cpp copied it into the GGUF file. The package
// exports no accessor, so the table is read from its TypeScript source (a plain
// array literal). The reference for the Llama 3.1 tests of package chat.
//
//   node ollama_template.js library/llama3.1:8b > chat_template.jinja
//
// The package is found through NODE_PATH (scripts/testdeps-npm.sh installs it).
'use strict';
const fs = require('fs');
const path = require('path');

const src = fs.readFileSync(
  path.join(path.dirname(require.resolve('@huggingface/ollama-utils')), '..', 'src', 'chat-template-automap.ts'),
  'utf8',
);
const start = src.indexOf('[', src.indexOf('OLLAMA_CHAT_TEMPLATE_MAPPING'));
const table = new Function('return ' + src.slice(start).trim().replace(/;$/, ''))();
const entry = table.find((e) => e.model === process.argv[2]);
if (!entry) {
  console.error(`ollama_template.js: no model ${process.argv[2]} in @huggingface/ollama-utils`);
  process.exit(1);
}
process.stdout.write(entry.gguf);
