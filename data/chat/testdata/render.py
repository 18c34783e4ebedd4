"""render.py renders chats with a model's Jinja chat_template the way
transformers' apply_chat_template does (jinja2 sandbox, trim_blocks,
lstrip_blocks, tojson, raise_exception, strftime_now), the reference for the
Go tests of package chat.

    python3 render.py TOKENIZER_CONFIG_JSON [TEMPLATE_FILE] < cases.json

cases:  [{"messages": [...], "add_generation_prompt": bool, "enable_thinking": bool|null,
          "strip_thinking": bool}]
output: ["rendered text", ...]

TEMPLATE_FILE, when given, replaces the chat_template of the config.
strip_thinking keeps of each assistant turn that has a </think> what follows
the last one, leading newlines removed, before rendering.
Needs jinja2 (apt-get install python3-jinja2, or pip install jinja2).
"""
import json
import sys
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def main():
    cfg = json.load(open(sys.argv[1], encoding="utf-8"))
    template = cfg.get("chat_template")
    if len(sys.argv) > 2:
        template = open(sys.argv[2], encoding="utf-8").read()
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    tmpl = env.from_string(template)
    special = {}
    for k in ("bos_token", "eos_token", "unk_token", "pad_token"):
        v = cfg.get(k)
        if isinstance(v, dict):
            v = v.get("content")
        if v is not None:
            special[k] = v
    out = []
    for case in json.load(sys.stdin):
        kw = dict(special)
        if case.get("enable_thinking") is not None:
            kw["enable_thinking"] = case["enable_thinking"]
        msgs = case["messages"]
        if case.get("strip_thinking"):
            msgs = [dict(m, content=m["content"].split("</think>")[-1].lstrip("\n"))
                    if m["role"] == "assistant" and "</think>" in m["content"] else m for m in msgs]
        out.append(tmpl.render(messages=msgs, tools=None, documents=None,
                               add_generation_prompt=bool(case.get("add_generation_prompt")), **kw))
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
