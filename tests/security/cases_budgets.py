"""Budget attack cases: templates that try to exhaust memory, time, or Python's stack (issue 9, items 4-7).

Each case: ``name``, ``category``, ``what``, ``expect`` — 'limit <field>': a TemplateRuntimeError naming the
``gl.Limits`` field, its value and how to raise it; 'syntax <field>': a TemplateSyntaxError naming it when the Program
is created — and ``template``, ``args`` (a function returning program arguments), optionally ``limits`` (a
``gl.Limits`` for the run, to keep the test fast), ``reply`` (what the Mock model answers) and ``seconds`` (the most the
case may take; default 20, generous for a loaded 2-core machine).
"""

from __future__ import annotations

import guidance_lite as gl

SIZE = "budgets: memory (size of values and text)"
TIME = "budgets: time (loops, steps, regexes)"
DEPTH = "budgets: depth (parse-time nesting, partials)"

SELF_INCLUDING = gl.Program("again {{>me}}")


def _self_including() -> dict:
    return {"me": SELF_INCLUDING}


CASES: list[dict] = [
    # ---- item 4: memory
    {
        "name": "string_times_billion",
        "category": SIZE,
        "what": "`{{len('a' * 1000000000)}}`: a 1 GB string",
        "expect": "limit max_value_size",
        "template": "{{len('a' * 1000000000)}}",
        "args": dict,
    },
    {
        "name": "list_times_billion",
        "category": SIZE,
        "what": "`[0] * 1000000000`: an 8 GB list",
        "expect": "limit max_value_size",
        "template": "{{len([0] * 1000000000)}}",
        "args": dict,
    },
    {
        "name": "multiply_helper",
        "category": SIZE,
        "what": "`{{multiply 'a' 1000000000}}`",
        "expect": "limit max_value_size",
        "template": "{{multiply 'a' 1000000000}}",
        "args": dict,
    },
    {
        "name": "add_helper",
        "category": SIZE,
        "what": "`{{add s s s}}` with a 4,000,000-character string",
        "expect": "limit max_value_size",
        "template": "{{len(add(s, s, s))}}",
        "args": lambda: {"s": "x" * 4_000_000},
    },
    {
        "name": "join_helper",
        "category": SIZE,
        "what": "`join` of 2,000,000 items with a long separator",
        "expect": "limit max_value_size",
        "template": "{{len(join(range(2000000), '----------'))}}",
        "args": dict,
    },
    {
        "name": "range_too_large",
        "category": SIZE,
        "what": "`range(100000000)`",
        "expect": "limit max_value_size",
        "template": "{{len(range(100000000))}}",
        "args": dict,
    },
    {
        "name": "string_padding",
        "category": SIZE,
        "what": "`'x'.ljust(1000000000)`: a string method that pads to any width",
        "expect": "limit max_value_size",
        "template": "{{len('x'.ljust(1000000000))}}",
        "args": dict,
    },
    {
        "name": "int_to_bytes",
        "category": SIZE,
        "what": "`(1).to_bytes(1000000000, 'big')`",
        "expect": "limit max_value_size",
        "template": "{{len(one.to_bytes(1000000000, 'big'))}}",
        "args": lambda: {"one": 1},
    },
    {
        "name": "string_doubling",
        "category": SIZE,
        "what": "a string doubled in a 32-step `each` (`{{set 's' s + s}}`): 8 GB at the end",
        "expect": "limit max_value_size",
        "template": "{{set 's' 'ab'}}{{#each range(32)}}{{set 's' s + s}}{{/each}}{{len(s)}}",
        "args": dict,
    },
    {
        "name": "repeated_squaring",
        "category": SIZE,
        "what": "an int squared in a 32-step `each` (`{{set 'x' x * x}}`): 2**(2**32), which never returns",
        "expect": "limit max_int_digits",
        "template": "{{set 'x' 2}}{{#each range(32)}}{{set 'x' x * x}}{{/each}}{{x}}",
        "args": dict,
    },
    {
        "name": "text_flood",
        "category": SIZE,
        "what": "a loop writing a 1,000,000-character value 100 times (100 MB of transcript)",
        "expect": "limit max_output_size",
        "template": "{{#each range(100)}}{{big}}{{/each}}",
        "args": lambda: {"big": "x" * 1_000_000},
    },
    # ---- item 4: time
    {
        "name": "each_ten_million",
        "category": TIME,
        "what": "`{{#each range(10000000)}}` (took 15-20 s and 2.6 GB)",
        "expect": "limit max_loop_iterations",
        "template": "{{#each range(10000000)}}{{/each}}",
        "args": dict,
    },
    {
        "name": "parallel_each_million",
        "category": TIME,
        "what": "`{{#each range(1000000) parallel=True}}` (took 47 s and 2.2 GB)",
        "expect": "limit max_loop_iterations",
        "template": "{{#each range(1000000) parallel=True}}x{{/each}}",
        "args": dict,
        "seconds": 5,
    },
    {
        "name": "nested_loops",
        "category": TIME,
        "what": "three nested loops of 1,000 (a billion iterations)",
        "expect": "limit max_loop_iterations",
        "template": "{{#each range(1000)}}{{#each range(1000)}}{{#each range(1000)}}{{/each}}{{/each}}{{/each}}",
        "args": dict,
    },
    {
        "name": "geneach_million",
        "category": TIME,
        "what": "`{{#geneach 'xs' num_iterations=1000000}}`",
        "expect": "limit max_loop_iterations",
        "template": "{{#geneach 'xs' num_iterations=1000000}}{{/geneach}}",
        "args": dict,
    },
    {
        "name": "many_steps",
        "category": TIME,
        "what": "a loop whose body is long: more evaluation steps than allowed (run with max_steps=1,000)",
        "expect": "limit max_steps",
        "template": "{{#each range(600)}}{{this}} {{/each}}",
        "args": dict,
        "limits": gl.Limits(max_steps=1_000),
    },
    # ---- item 7: regular expressions
    {
        "name": "stop_regex_backtracking",
        "category": TIME,
        "what": "`stop_regex='(a|a)*b'` against 28 `a`s (ran for more than 30 s)",
        "expect": "limit regex_seconds",
        "template": "{{gen 'x' stop_regex='(a|a)*b'}}",
        "args": dict,
        "reply": "a" * 28 + "!",
    },
    {
        "name": "pattern_backtracking",
        "category": TIME,
        "what": "`pattern='(a|a)*$'` checked against 28 `a`s and a `!`",
        "expect": "limit regex_seconds",
        "template": "{{gen 'x' pattern='(a|a)*$'}}",
        "args": dict,
        "reply": "a" * 28 + "!",
    },
    # ---- items 5 and 6: depth
    {
        "name": "nested_not",
        "category": DEPTH,
        "what": "1,000 nested `not` (a RecursionError from gl.Program)",
        "expect": "syntax max_nesting_depth",
        "template": "{{" + "not " * 1000 + "x}}",
        "args": dict,
    },
    {
        "name": "chained_plus",
        "category": DEPTH,
        "what": "100,000 chained `+` (a RecursionError from gl.Program)",
        "expect": "syntax max_nesting_depth",
        "template": "{{" + "+".join(["1"] * 100_000) + "}}",
        "args": dict,
        "seconds": 60,
    },
    {
        "name": "nested_brackets",
        "category": DEPTH,
        "what": "5,000 nested `[` (a RecursionError from gl.Program)",
        "expect": "syntax max_nesting_depth",
        "template": "{{" + "[" * 5000 + "]" * 5000 + "}}",
        "args": dict,
    },
    {
        "name": "nested_blocks",
        "category": DEPTH,
        "what": "500 nested `{{#if}}` blocks (a RecursionError at run time)",
        "expect": "syntax max_nesting_depth",
        "template": "{{#if 1}}" * 500 + "x" + "{{/if}}" * 500,
        "args": dict,
    },
    {
        "name": "self_including_partial",
        "category": DEPTH,
        "what": "a partial that includes itself (a correct error 8,249 characters long)",
        "expect": "limit max_partial_depth",
        "template": "{{>me}}",
        "args": _self_including,
    },
    {
        "name": "self_parsing_template",
        "category": DEPTH,
        "what": "`{{parse s}}` where `s` is `{{parse s}}` (the same recursion through parse)",
        "expect": "limit max_partial_depth",
        "template": "{{parse s}}",
        "args": lambda: {"s": "{{parse s}}"},
    },
]
