"""
Typos on the command line, caught before argparse parses it.

argparse checks required flags before it looks at unknown ones, so a misspelt required
flag (`--repositry`) is reported as a missing one and the typo is never named; and it
reports a subcommand's unknown flags under the top-level usage. One pass over the
arguments first names the first unknown command, flag or stray argument, with the
nearest valid spelling, under the usage of the command it belongs to.
"""

from __future__ import annotations

import argparse
import difflib

from .parser import with_default_command

# argparse has no public way to list a parser's actions; `_actions` and the action
# classes have been stable since Python 3.2 (`reference.py` relies on them too).


def check(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """
    `argv` with its default command (`with_default_command`); first, exit with status 2
    (argparse's usage error) on the first unknown command, flag or stray argument,
    naming it and the nearest valid one.
    """
    full = with_default_command(argv)
    commands = _commands(parser)
    if not full or full[0].startswith("-"):
        return full
    name = full[0]
    sub = commands.get(name)
    if sub is None:
        parser.error(f"unknown command '{name}'{_suggest(name, list(commands))}")
    # `relocator --verison` reaches the default command: the top-level flags are what
    # the user more likely meant.
    implied = full is not argv and full[1:] == argv
    extra = (
        [flag for action in parser._actions for flag in action.option_strings]
        if implied
        else []
    )
    problem = _first_problem(sub, full[1:], extra)
    if problem is not None:
        sub.error(problem)
    return full


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _first_problem(
    parser: argparse.ArgumentParser, args: list[str], extra: list[str]
) -> str | None:
    """
    What is wrong with the first argument `parser` would not accept, if any; `extra`
    flags are suggested too.
    """
    options = {flag: action for action in parser._actions for flag in action.option_strings}
    # Bare words the command takes (`copy SRC DST`); past those, a bare word is a value
    # whose flag is missing.
    slots = _positional_slots(parser)
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            return None
        if not arg.startswith("-") or arg == "-":
            if slots > 0:
                slots -= 1
                continue
            hint = f" (did you mean -f {arg}?)" if "-f" in options else ""
            return f"unrecognized argument '{arg}'{hint}"
        try:
            action, inline = _lookup(options, arg)
        except _Ambiguous as exc:
            return str(exc)
        if action is None:
            flag = arg.split("=", 1)[0]
            return f"unrecognized argument {flag}{_suggest(flag, [*options, *extra])}"
        if inline or action.nargs == 0:
            continue
        if action.nargs == "?":
            # An optional value is taken only when the next argument is not a flag.
            if index < len(args) and not args[index].startswith("-"):
                index += 1
            continue
        index += 1
    return None


def _positional_slots(parser: argparse.ArgumentParser) -> int | float:
    """How many bare words `parser` takes (infinity when one positional takes many)."""
    slots: int | float = 0
    for action in parser._actions:
        if action.option_strings or isinstance(action, argparse._SubParsersAction):
            continue
        if action.nargs in (None, "?"):
            slots += 1
        elif isinstance(action.nargs, int):
            slots += action.nargs
        else:
            return float("inf")
    return slots


class _Ambiguous(Exception):
    """A prefix of more than one long flag."""


def _lookup(
    options: dict[str, argparse.Action], arg: str
) -> tuple[argparse.Action | None, bool]:
    """The action `arg` selects, and whether it carries its value (`--x=v`, `-fv`)."""
    if arg in options:
        return options[arg], False
    if arg.startswith("--"):
        flag, has_value, _ = arg.partition("=")
        if flag in options:
            return options[flag], bool(has_value)
        # argparse accepts an unambiguous prefix of a long flag (allow_abbrev); an
        # ambiguous one is left for argparse to report.
        matches = [option for option in options if option.startswith(flag)]
        if len({id(options[match]) for match in matches}) > 1:
            raise _Ambiguous(f"ambiguous argument {flag}: {' or '.join(matches)}?")
        if matches:
            return options[matches[0]], bool(has_value)
        return None, False
    # Short flags: `-fFILE`, or a cluster like `-qf FILE` where only the last takes a value.
    for position in range(1, len(arg)):
        short = options.get(f"-{arg[position]}")
        if short is None:
            return None, False
        if short.nargs != 0:
            return short, position + 1 < len(arg)
    return options[f"-{arg[-1]}"], False


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]}?)" if close else ""
