"""The rule-set editor of the assignment page: one row per rule, generated from the registry.

A row's inputs come from its rule's typed parameters (`grader.rules.RULES[id].params`): an
`Int` becomes a number input, a `Bool` a checkbox, a `Choice` a select, `ClassNames` a
comma-separated list, and so on; a parameter type this module does not know falls back to a
one-line YAML value. Nothing here is written per rule, so a rule added to the registry shows up
in the editor with proper inputs.

The grading core stays the single judge of a valid rule set: the editor turns what was typed into
values, asks each parameter's own `check`, then `load_ruleset` for the whole set, and only
rephrases the answers so that they name the row as the page numbers it ("Rule 2 (`max_params`)").

`inputs` turns parameter types into inputs, `rows` builds one rule's row, `editor` holds the rows
and their tools (add, remove, move, import, export, preset). Buttons other than Save post the
page, which comes back rebuilt and unsaved: the editor works without JavaScript.
"""

from .editor import EXPORT, SAVE, EditorUpdate, RuleSetEditor
from .inputs import PARAM_INPUTS, ParamField, ParamInput, displayed, param_input
from .rows import RuleRowForm, new_row, row_of

__all__ = [
    "EXPORT",
    "PARAM_INPUTS",
    "SAVE",
    "EditorUpdate",
    "ParamField",
    "ParamInput",
    "RuleRowForm",
    "RuleSetEditor",
    "displayed",
    "new_row",
    "param_input",
    "row_of",
]
