"""``dsvm check-node``: preflight a node before it fails a job."""

from __future__ import annotations

import argparse

from dsvm.commands import add_command, add_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
    p = add_command(
        sub, name, help="preflight the node (disk, kvm, users, git cache, images)",
        description="Check that this node can run a job: free disk (node.min_disk_gb), "
                    "/dev/kvm, not a container (LXC/docker: devstack cannot run there), "
                    "stack/tempest users and sudo rules, git cache complete for the profile "
                    "and fresh (node.cache_max_age_hours), images present, required commands. "
                    "Each failed check says how to fix it. Exit 0 when all pass, 3 otherwise.\n\n"
                    'JSON: {"ok": bool, "checks": [{"name", "ok", "detail", "fix"}]}',
        example="dsvm --profile cinder-lvm check-node --json")
    p.add_argument("--git-cache", metavar="DIR", help="cache root (default /opt/git)")
    p.add_argument("--root", metavar="DIR", help="node root to inspect (default /)")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from dsvm import node_checks, phase, profile
    from dsvm.console import get_ui

    settings = profile.resolve(args.profile, options={"git.cache": args.git_cache,
                                                      "node.root": args.root})
    result = node_checks.run_phase(phase.context(settings))
    if args.json:
        print(json.dumps(result.outputs, indent=2))
        return result.exit_code
    ui = get_ui()
    rows = [("ok" if c["ok"] else "FAIL", c["name"], c["detail"], c["fix"] or "")
            for c in result.outputs["checks"]]
    ui.table("check-node", ["", "check", "detail", "fix"], rows)
    (ui.ok if result.ok else ui.warn)(f"check-node: {result.summary}")
    return result.exit_code
