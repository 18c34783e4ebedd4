// Package chat turns chat messages into token ids and a loss mask, exactly as
// a model family's own Jinja chat_template renders them, tokenized.
//
// Families:
//
//	qwen2     Qwen2.5 ChatML, with its default system prompt when the chat has none
//	qwen3     Qwen3 ChatML with <think> handling (reasoning kept only after the last user turn)
//	llama3    Llama 3: <|begin_of_text|>, role headers, trimmed content, <|eot_id|>
//	llama3.1  Llama 3.1 Instruct: as llama3, after a system turn that opens with
//	          "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
//	          (the template's default date) and holds the chat's system message
//	chatml    plain ChatML for tiny demo tokenizers (tokenizer.NewByteLevel)
//
// The mask marks the tokens trained on: the content of assistant turns and
// their end-of-turn token, never the role header. Render tokenizes whole runs
// of text between special tokens, so ids are identical to tokenizing the
// template's output in one piece.
//
// Tools are not rendered: messages have no tool calls, and roles other than
// system, user and assistant (Llama's ipython and tool) are refused.
package chat
