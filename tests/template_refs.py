# template_refs.py: writes tests/template_refs.inc, the reference renderings of the shared chat templates
# (../shared/models/chat-templates) by Jinja2 set up as Hugging Face renders chat templates, for
# the template engine's test (tests/test_template.c, to come). Run from the project root:
#   apt-get install python3-jinja2 && python3 tests/template_refs.py > tests/template_refs.inc
import json, os, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.exceptions import TemplateError
D=os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'models', 'chat-templates') + '/'
nosys={'gemma-2-it','mistral-7b-instruct-v0.1','mistral-7b-instruct-v0.2'}
def rx(m): raise TemplateError(m)
env=ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=['jinja2.ext.loopcontrols'])
env.globals['raise_exception']=rx
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
env.filters['tojson']=tojson
def cstr(s):
    b=s.encode('utf-8'); o='"'
    for i,c in enumerate(b):
        if c==10: o+='\\n"\n    "'
        elif c==34: o+='\\"'
        elif c==92: o+='\\\\'
        elif 32<=c<127: o+=chr(c)
        else: o+='\\%03o'%c
    return o+'"'
print('static const tmpl_ref REFS[] = {')
for f in sorted(os.listdir(D)):
    if not f.endswith('.jinja'): continue
    n=f[:-6]
    conv='conversation-nosystem.json' if n in nosys else 'conversation.json'
    msgs=json.load(open(D+conv))
    t=env.from_string(open(D+f,encoding='utf-8').read())
    r=[t.render(messages=msgs,add_generation_prompt=g,bos_token='<s>',eos_token='</s>',date_string='26 Jul 2024') for g in (False,True)]
    print('    {"%s", "%s",\n    %s,\n    %s},'%(n,conv,cstr(r[0]),cstr(r[1])))
print('};')
