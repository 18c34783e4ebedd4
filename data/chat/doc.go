// Package chat turns chat messages into token ids and a loss mask, exactly as
// a model family's own Jinja chat_template renders them, tokenized.
//
// Families:
//
//	qwen2   Qwen2.5 ChatML, with its default system prompt when the chat has none
//	qwen3   Qwen3 ChatML with <think> handling (reasoning kept only after the last user turn)
//	llama3  Llama 3: <|begin_of_text|>, role headers, trimmed content, <|eot_id|>
//	chatml  plain ChatML for tiny demo tokenizers (tokenizer.NewByteLevel)
//
// The mask marks the tokens trained on: the content of assistant turns and
// their end-of-turn token, never the role header. Render tokenizes whole runs
// of text between special tokens, so ids are identical to tokenizing the
// template's output in one piece.
package chat
