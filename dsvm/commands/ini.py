"""``dsvm ini``: devstack's iniset family, same arguments, same file result and exit status.

``cli.py`` hands ``dsvm ini ...`` straight to ``main`` (no parser for the other commands is
built, nothing heavy is imported): hook scripts call it hundreds of times.
"""

from __future__ import annotations

import argparse
import sys

from dsvm.commands import add_command
from dsvm.errors import Problem, UsageError

Edit = tuple[str, list[str]]  # (devstack function, its argv)

# dsvm ini ACTION → devstack function (devstack's own names are accepted too)
ACTIONS: dict[str, str] = {
    "set": "iniset", "get": "iniget", "del": "inidelete", "add": "iniadd",
    "add-literal": "iniadd_literal", "set-multiline": "iniset_multiline",
    "get-multiline": "iniget_multiline", "has": "ini_has_option", "comment": "inicomment",
    "uncomment": "iniuncomment", "sections": "iniget_sections", "localrc-set": "localrc_set",
    "localconf-set": "localconf_set",
}

DESCRIPTION = """\
Edit ini files exactly as devstack's inc/ini-config functions do (same file bytes, same
stdout, same exit status), so a hook script can call 'dsvm ini set' where it called iniset.
Arguments follow devstack's order; devstack's -sudo flag is accepted first.

  set [-sudo] FILE SECTION OPTION VALUE         iniset
  get FILE SECTION OPTION                       iniget
  del [-sudo] FILE SECTION OPTION               inidelete
  add [-sudo] FILE SECTION OPTION VALUE...      iniadd
  add-literal [-sudo] FILE SECTION OPTION VALUE iniadd_literal
  set-multiline [-sudo] FILE SECTION OPTION VALUE...  iniset_multiline
  get-multiline FILE SECTION OPTION             iniget_multiline
  has [-sudo] FILE SECTION OPTION               ini_has_option (exit 0 present, 1 absent)
  comment [-sudo] FILE SECTION OPTION           inicomment
  uncomment [-sudo] FILE SECTION OPTION         iniuncomment
  sections FILE                                 iniget_sections
  localrc-set FILE VAR VALUE                    localrc_set (edits local.conf)
  localconf-set [-sudo] FILE PHASE CONFFILE SECTION OPTION VALUE   localconf_set
  apply FILE [EDITS|-]                          many edits, one process, one atomic write

Where devstack fails silently (missing file or directory, a name sed cannot take), dsvm
gives the same result and status and prints a one-line warning on stderr.

apply reads EDITS (a file, or stdin when absent or '-'): one edit per line, in shell-word
syntax without expansion, e.g.  set DEFAULT debug True  /  del database connection  /
add filter item one two; or YAML (a list such as  - set: [DEFAULT, debug, "True"]  with an
optional  file:  key per item). Its stdout is every call's stdout; its exit status is the
last call's.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
    p = add_command(
        sub, name, help="iniset/iniget/... with devstack's arguments and results",
        description=DESCRIPTION,
        example="dsvm ini set /etc/cinder/cinder.conf DEFAULT debug True")
    p.add_argument("action", choices=sorted([*ACTIONS, "apply"]), metavar="ACTION")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return main([args.action, *args.args])


def main(argv: list[str]) -> int:
    """Run ``dsvm ini ACTION ARGS...``; return devstack's exit status."""
    from dsvm.devstack import ini

    if not argv:
        raise UsageError("dsvm ini: an action is required", hint="see: dsvm ini --help")
    action, rest = argv[0], argv[1:]
    if action == "apply":
        return _apply(rest)
    fn = ACTIONS.get(action) or (action if action in ini.FUNCTIONS else None)
    if fn is None:
        raise UsageError(f"unknown ini action {action!r}",
                         hint="actions: " + ", ".join([*ACTIONS, "apply"]))
    session = ini.Session()
    call = session.call(fn, rest)
    session.commit()
    _finish(session, call.stdout)
    return call.rc


def _finish(session: object, stdout: str) -> None:
    sys.stdout.write(stdout)
    sys.stdout.flush()
    seen: set[str] = set()
    for warning in getattr(session, "warnings", []):
        path = warning.split(": ", 1)[0]
        if path not in seen:   # one line per path: the first failure explains the rest
            seen.add(path)
            print(f"dsvm ini: warning: {warning}", file=sys.stderr)


def _apply(rest: list[str]) -> int:
    from dsvm.devstack import ini

    if not rest or len(rest) > 2:
        raise UsageError("usage: dsvm ini apply FILE [EDITS|-]")
    path = rest[0]
    source = rest[1] if len(rest) == 2 else "-"
    if source == "-":
        text, where = sys.stdin.read(), "<stdin>"
    else:
        try:
            with open(source, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise UsageError(f"cannot read edits {source}: {exc.strerror}") from None
        where = source
    edits = parse_edits(text, path, where)
    session = ini.Session()
    out: list[str] = []
    rc = 0
    for fn, args in edits:
        call = session.call(fn, args)
        out.append(call.stdout)
        rc = call.rc
    session.commit()
    _finish(session, "".join(out))
    return rc


def parse_edits(text: str, path: str, where: str) -> list[Edit]:
    """Edits (devstack function, argv) from the line or YAML format; UsageError names the line."""
    first = next((ln.strip() for ln in text.splitlines()
                  if ln.strip() and not ln.lstrip().startswith("#")), "")
    if first.startswith("- ") or first == "-" or first.startswith("edits:"):
        return _yaml_edits(text, path, where)
    import shlex

    edits: list[Edit] = []
    problems: list[Problem] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            problems.append(Problem(f"{where}:{lineno}", str(exc)))
            continue
        if not words:
            continue
        fn = ACTIONS.get(words[0]) or words[0]
        _keep(_edit(fn, words[1:], path, f"{where}:{lineno}"), edits, problems)
    return _all_or_nothing(edits, problems, where)


def _edit(fn: str, args: list[str], path: str, where: str) -> tuple[Edit | None, Problem | None]:
    from dsvm.devstack import ini
    if fn not in ini.FUNCTIONS:
        return None, Problem(where, f"unknown action {fn!r}",
                             hint="one of: " + ", ".join(ACTIONS))
    sudo = args[:1] == ["-sudo"]
    return (fn, (["-sudo"] if sudo else []) + [path] + args[int(sudo):]), None


def _keep(found: tuple[Edit | None, Problem | None], edits: list[Edit],
          problems: list[Problem]) -> None:
    """File one parsed edit, or its problem."""
    edit, problem = found
    if problem:
        problems.append(problem)
    elif edit:
        edits.append(edit)


def _all_or_nothing(edits: list[Edit], problems: list[Problem], where: str) -> list[Edit]:
    """The edits when every one parsed; otherwise exit 2 listing every problem."""

    if problems:
        raise UsageError(f"{len(problems)} bad edit(s) in {where}; nothing was changed",
                         problems=_grouped(problems, where))
    return edits


FIRST_FEW = 5  # places named when many edits share one problem


def _grouped(problems: list[Problem], where: str) -> list[Problem]:
    """One problem per distinct message: a batch of 300 edits in the wrong format says so
    once, with the count and the first few line numbers, not 300 times."""
    groups: dict[tuple[str, str | None, str | None], list[Problem]] = {}
    for problem in problems:
        groups.setdefault((problem.message, problem.hint, problem.context), []).append(problem)
    out = []
    for (message, hint, context), same in groups.items():
        if len(same) == 1:
            out.append(same[0])
            continue
        places = [p.where.removeprefix(where).lstrip(":").strip() for p in same]
        label = "lines"
        if all(place.startswith("edit ") for place in places):
            places, label = [place.removeprefix("edit ") for place in places], "edits"
        shown = ", ".join(places[:FIRST_FEW]) + (
            f" and {len(places) - FIRST_FEW} more" if len(places) > FIRST_FEW else "")
        out.append(Problem(f"{where}: {label} {shown}", f"{message} ({len(same)} edits)",
                           hint, context))
    return out


def _yaml_edits(text: str, path: str, where: str) -> list[Edit]:
    import yaml


    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{where}: not valid YAML: {exc}") from None
    if isinstance(data, dict):
        data = data.get("edits")
    if not isinstance(data, list):
        raise UsageError(f"{where}: expected a list of edits")
    edits: list[Edit] = []
    problems: list[Problem] = []
    for k, item in enumerate(data, 1):
        label = f"{where}: edit {k}"
        if not isinstance(item, dict):
            problems.append(Problem(label, "an edit is a mapping such as {set: [S, O, V]}"))
            continue
        item = dict(item)
        target = str(item.pop("file", path))
        if len(item) != 1:
            problems.append(Problem(label, "one action per edit (plus an optional file:)"))
            continue
        (action, args), = item.items()
        args = args if isinstance(args, list) else [args]
        words = ["" if a is None else _yaml_str(a) for a in args]
        _keep(_edit(ACTIONS.get(str(action)) or str(action), words, target, label), edits,
              problems)
    return _all_or_nothing(edits, problems, where)


def _yaml_str(value: object) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)
