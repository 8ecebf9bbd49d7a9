# template_check.py: renders every *.jinja chat template in a folder with Jinja2 (set up as Hugging Face
# renders chat templates, with its {% generation %} tag) and with `vkllm template --template-file`, for
# three conversations (with a system prompt, without, with tools and tool calls), without and with the
# generation prompt, and reports where the two differ. For templates of models that are not among the
# shared ones, e.g. llama.cpp's models/templates:
#   python3 tests/template_check.py build/vkllm DIR
import datetime, json, os, subprocess, sys, tempfile
from jinja2 import nodes
from jinja2.exceptions import TemplateError
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

class Generation(Extension):
    tags = {'generation'}
    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(['name:endgeneration'], drop_needle=True)
        return nodes.Scope(body, lineno=lineno)

def raise_exception(m): raise TemplateError(m)
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                    extensions=['jinja2.ext.loopcontrols', Generation])
env.globals['raise_exception'] = raise_exception
env.globals['strftime_now'] = lambda f: datetime.datetime.now().strftime(f)
env.filters['tojson'] = tojson

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "description": "City"}}, "required": ["city"]}}}]
CONVS = {
    'system': {"messages": [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Hello 你好"},
                            {"role": "assistant", "content": "Hi there!"}, {"role": "user", "content": "What is 2+2?"}]},
    'nosystem': {"messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"},
                              {"role": "user", "content": "Bye"}]},
    'tools': {"messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "{\"temp\": 20}"},
        {"role": "assistant", "content": "It is 20 degrees."}], "tools": TOOLS},
}

def main():
    vkllm, folder = sys.argv[1], sys.argv[2]
    same = differ = both_fail = 0
    conv_path = os.path.join(tempfile.mkdtemp(), 'conversation.json')
    for f in sorted(os.listdir(folder)):
        if not f.endswith('.jinja'): continue
        path = os.path.join(folder, f)
        src = open(path, encoding='utf-8').read()
        for cname, conv in CONVS.items():
            for gen in (False, True):
                ctx = dict(conv, add_generation_prompt=gen, bos_token='<s>', eos_token='</s>')
                try:
                    ref, ref_err = env.from_string(src).render(**ctx), None
                except Exception as e:
                    ref, ref_err = None, str(e)
                with open(conv_path, 'w') as out:
                    json.dump(conv, out, ensure_ascii=False)
                cmd = [vkllm, 'template', '--template-file', path, '-f', conv_path, '--bos', '<s>', '--eos', '</s>']
                p = subprocess.run(cmd + (['--add-generation-prompt'] if gen else []), capture_output=True)
                ours = p.stdout.decode('utf-8', 'replace') if p.returncode == 0 else None
                what = '%s %s%s' % (f, cname, ' +gen' if gen else '')
                if ref is None and ours is None:
                    both_fail += 1
                    print('both fail  %s\n  Jinja2: %s\n  vkllm:  %s' % (what, ref_err[:100], p.stderr.decode().strip()[-160:]))
                elif ours == ref:
                    same += 1
                else:
                    differ += 1
                    if ref is None: print('DIFFER     %s: Jinja2 fails (%s), vkllm renders' % (what, ref_err[:80]))
                    elif ours is None: print('DIFFER     %s: vkllm fails: %s' % (what, p.stderr.decode().strip()[-200:]))
                    else:
                        i = next((k for k in range(min(len(ours), len(ref))) if ours[k] != ref[k]), min(len(ours), len(ref)))
                        print('DIFFER     %s at character %d\n  vkllm:  %r\n  Jinja2: %r' % (what, i, ours[max(0, i - 40):i + 60], ref[max(0, i - 40):i + 60]))
    print('%d renders identical, %d differ, %d fail in both' % (same, differ, both_fail))
    return 1 if differ else 0

if __name__ == '__main__':
    sys.exit(main())
