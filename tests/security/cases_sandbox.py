"""Sandbox attack cases: what a template tries to reach through the values it is given (issue 9, items 1-3).

Each case: ``name``, ``category``, ``what`` (the attack, for SECURITY.md), ``expect`` ('refused': a
TemplateRuntimeError saying "not allowed" and every value passed in unchanged; 'unchanged': the run may succeed, but
nothing passed in changes), ``template``, ``args`` (a function returning fresh program arguments) and, for Program
defaults, ``defaults`` (a function returning fresh defaults; the program then runs twice).
"""

from __future__ import annotations

import collections
import datetime
import functools
import json
import os
import pathlib
import re
import types
import uuid

from guidance_lite import tool


@tool
def lookup(key: str) -> str:
    """Look a key up."""
    return key


MODULES = "sandbox: modules, frames and globals"
WRAPPERS = "sandbox: what wrapped functions expose"
MUTATION = "sandbox: values passed in are never changed"
INTERNALS = "sandbox: interpreter internals and dangerous builtins"


def _generator() -> object:
    yield 1


CASES: list[dict] = [
    # ---- item 1: a passed standard-library module is not a door to os
    {
        "name": "datetime_to_os",
        "category": MODULES,
        "what": "`datetime.sys.modules['os'].popen('id -un')` with the `datetime` module passed in",
        "expect": "refused",
        "template": "{{datetime.sys.modules['os'].popen('id -un').read()}}",
        "args": lambda: {"datetime": datetime},
    },
    {
        "name": "json_to_builtins",
        "category": MODULES,
        "what": "`json.codecs.builtins.open(...)` with the `json` module passed in",
        "expect": "refused",
        "template": "{{json.codecs.builtins.open('/etc/passwd').read()}}",
        "args": lambda: {"json": json},
    },
    {
        "name": "re_to_sys",
        "category": MODULES,
        "what": "`re.enum.sys.modules` with the `re` module passed in",
        "expect": "refused",
        "template": "{{re.enum.sys.modules['os'].getcwd()}}",
        "args": lambda: {"re": re},
    },
    {
        "name": "pathlib_to_os",
        "category": MODULES,
        "what": "`pathlib.os.popen('id')` with the `pathlib` module passed in",
        "expect": "refused",
        "template": "{{pathlib.os.popen('id').read()}}",
        "args": lambda: {"pathlib": pathlib},
    },
    {
        "name": "uuid_to_environ",
        "category": MODULES,
        "what": "`uuid.os.environ` with the `uuid` module passed in",
        "expect": "refused",
        "template": "{{uuid.os.environ['HOME']}}",
        "args": lambda: {"uuid": uuid},
    },
    {
        "name": "module_in_a_dict",
        "category": MODULES,
        "what": "a module stored under a key of a dict passed in (`cfg['os']`)",
        "expect": "refused",
        "template": "{{cfg['os'].getcwd()}}",
        "args": lambda: {"cfg": {"os": os}},
    },
    {
        "name": "module_as_mapping_key_attribute",
        "category": MODULES,
        "what": "the same module read as `cfg.os` (mapping keys win over attributes)",
        "expect": "refused",
        "template": "{{cfg.os.getcwd()}}",
        "args": lambda: {"cfg": {"os": os}},
    },
    {
        "name": "module_globals",
        "category": MODULES,
        "what": "an attribute holding a module's globals (what a function's `__globals__` is)",
        "expect": "refused",
        "template": "{{obj.namespace['os'].getcwd()}}",
        "args": lambda: {"obj": types.SimpleNamespace(namespace=vars(pathlib))},
    },
    {
        "name": "generator_frame",
        "category": MODULES,
        "what": "`gen.gi_frame.f_globals` of a generator passed in",
        "expect": "refused",
        "template": "{{gen.gi_frame.f_globals}}",
        "args": lambda: {"gen": _generator()},
    },
    {
        "name": "code_object",
        "category": MODULES,
        "what": "an attribute whose value is a code object",
        "expect": "refused",
        "template": "{{obj.code}}",
        "args": lambda: {"obj": types.SimpleNamespace(code=_generator.__code__)},
    },
    {
        "name": "globals_dict_get",
        "category": MODULES,
        "what": "`ns.get('os')` on a module's globals passed in: a call that returns a module",
        "expect": "refused",
        "template": "{{ns.get('os').getcwd()}}",
        "args": lambda: {"ns": vars(pathlib)},
    },
    # ---- item 3: functools.partial does not expose what it wraps
    {
        "name": "partial_func",
        "category": WRAPPERS,
        "what": "`f.func('HOME')` with `f = partial(os.getenv, 'LANG')`: the wrapped function reads any variable",
        "expect": "refused",
        "template": "{{f.func('HOME')}}",
        "args": lambda: {"f": functools.partial(os.getenv, "LANG")},
    },
    {
        "name": "partial_args",
        "category": WRAPPERS,
        "what": "`f.args` of a partial (the arguments it was bound with)",
        "expect": "refused",
        "template": "{{f.args}}",
        "args": lambda: {"f": functools.partial(os.getenv, "LANG")},
    },
    {
        "name": "partial_keywords",
        "category": WRAPPERS,
        "what": "`f.keywords` of a partial",
        "expect": "refused",
        "template": "{{f.keywords}}",
        "args": lambda: {"f": functools.partial(int, base=2)},
    },
    # ---- item 2: nothing passed in is mutated, also across runs
    {
        "name": "dict_update",
        "category": MUTATION,
        "what": "`cfg.update({'n': 5})` on a dict passed in",
        "expect": "refused",
        "template": "{{cfg.update({'n': 5})}}",
        "args": lambda: {"cfg": {"n": 1, "log": []}},
    },
    {
        "name": "nested_list_append",
        "category": MUTATION,
        "what": "`cfg.log.append('x')` on a list inside a dict passed in",
        "expect": "refused",
        "template": "{{cfg.log.append('x')}}",
        "args": lambda: {"cfg": {"n": 1, "log": []}},
    },
    {
        "name": "list_append",
        "category": MUTATION,
        "what": "`xs.append(4)`",
        "expect": "refused",
        "template": "{{xs.append(4)}}",
        "args": lambda: {"xs": [1, 2, 3]},
    },
    {
        "name": "list_clear",
        "category": MUTATION,
        "what": "`xs.clear()`",
        "expect": "refused",
        "template": "{{xs.clear()}}",
        "args": lambda: {"xs": [1, 2, 3]},
    },
    {
        "name": "list_sort",
        "category": MUTATION,
        "what": "`xs.sort()` (in place; `sorted(xs)` is the way)",
        "expect": "refused",
        "template": "{{xs.sort()}}",
        "args": lambda: {"xs": [3, 1, 2]},
    },
    {
        "name": "dict_pop",
        "category": MUTATION,
        "what": "`d.pop('a')`",
        "expect": "refused",
        "template": "{{d.pop('a')}}",
        "args": lambda: {"d": {"a": 1}},
    },
    {
        "name": "dict_setdefault",
        "category": MUTATION,
        "what": "`d.setdefault('b', 2)`",
        "expect": "refused",
        "template": "{{d.setdefault('b', 2)}}",
        "args": lambda: {"d": {"a": 1}},
    },
    {
        "name": "set_add",
        "category": MUTATION,
        "what": "`s.add(4)` on a set",
        "expect": "refused",
        "template": "{{s.add(4)}}",
        "args": lambda: {"s": {1, 2}},
    },
    {
        "name": "deque_appendleft",
        "category": MUTATION,
        "what": "`q.appendleft(0)` on a deque",
        "expect": "refused",
        "template": "{{q.appendleft(0)}}",
        "args": lambda: {"q": collections.deque([1, 2])},
    },
    {
        "name": "bytearray_extend",
        "category": MUTATION,
        "what": "`b.extend(b'x')` on a bytearray",
        "expect": "refused",
        "template": "{{b.extend(other)}}",
        "args": lambda: {"b": bytearray(b"ab"), "other": b"x"},
    },
    {
        "name": "unbound_method",
        "category": MUTATION,
        "what": "the unbound `L.append(xs, 4)` with the `list` type passed in as `L`",
        "expect": "refused",
        "template": "{{L.append(xs, 4)}}",
        "args": lambda: {"L": list, "xs": [1]},
    },
    {
        "name": "defaultdict_read",
        "category": MUTATION,
        "what": "reading a missing key of a defaultdict (which inserts it in Python)",
        "expect": "unchanged",
        "template": "{{counts['new']}}",
        "args": lambda: {"counts": collections.defaultdict(int, {"a": 1})},
    },
    {
        "name": "default_tools_clear",
        "category": MUTATION,
        "what": "`tools.clear()` on a Program default, run twice (the second run must still see the tools)",
        "expect": "refused",
        "template": "{{tools.clear()}}",
        "args": lambda: {},
        "defaults": lambda: {"tools": [lookup]},
    },
    {
        "name": "default_dict_update",
        "category": MUTATION,
        "what": "`cfg.update(...)` on a Program default, run twice",
        "expect": "refused",
        "template": "{{cfg.update({'n': 5})}}",
        "args": lambda: {},
        "defaults": lambda: {"cfg": {"n": 1}},
    },
    # ---- what was refused before issue 9, kept
    {
        "name": "dunder_class",
        "category": INTERNALS,
        "what": "`x.__class__` (and every other name starting with `_`)",
        "expect": "refused",
        "template": "{{x.__class__}}",
        "args": lambda: {"x": 1},
    },
    {
        "name": "str_format",
        "category": INTERNALS,
        "what": "`'{0.__class__}'.format(x)`: str.format reads attributes by name",
        "expect": "refused",
        "template": "{{'{0.__class__}'.format(x)}}",
        "args": lambda: {"x": 1},
    },
    {
        "name": "percent_format",
        "category": INTERNALS,
        "what": "`'%s' % x`: printf formatting",
        "expect": "refused",
        "template": "{{'%(a)s' % d}}",
        "args": lambda: {"d": {"a": 1}},
    },
    {
        "name": "mro",
        "category": INTERNALS,
        "what": "`T.mro()` of a class passed in",
        "expect": "refused",
        "template": "{{T.mro()}}",
        "args": lambda: {"T": int},
    },
    {
        "name": "eval_passed_in",
        "category": INTERNALS,
        "what": "calling `eval` when the caller passed it in",
        "expect": "refused",
        "template": "{{f('1 + 1')}}",
        "args": lambda: {"f": eval},
    },
    {
        "name": "open_passed_in",
        "category": INTERNALS,
        "what": "calling `open` when the caller passed it in",
        "expect": "refused",
        "template": "{{f('/etc/passwd')}}",
        "args": lambda: {"f": open},
    },
    {
        "name": "getattr_passed_in",
        "category": INTERNALS,
        "what": "calling `getattr(x, '__class__')` when the caller passed `getattr` in",
        "expect": "refused",
        "template": "{{f(x, '__class__')}}",
        "args": lambda: {"f": getattr, "x": 1},
    },
    {
        "name": "helper_attributes",
        "category": INTERNALS,
        "what": "reading the attributes of a built-in command (`gen.fn`)",
        "expect": "refused",
        "template": "{{gen.fn}}",
        "args": lambda: {},
    },
]
