"""``flashfleet-inventory ARRAY_DIR``: print what is on a FlashFleet array as JSON.

The vendor-compliance check (``cinder.backends[*].inventory``) runs this before and after
Tempest to find volumes a driver leaked. Exit 0 with the JSON on stdout; exit 2 when the
directory is not an array.
"""

from __future__ import annotations

import argparse
import json
import sys

from sanco_flashfleet.array import Array, ArrayError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flashfleet-inventory", description=__doc__)
    parser.add_argument("array_dir", help="the array directory (flashfleet_array_dir)")
    args = parser.parse_args(argv)
    try:
        inventory = Array(args.array_dir).inventory()
    except (ArrayError, OSError, ValueError) as exc:
        print(f"flashfleet-inventory: {exc}", file=sys.stderr)
        return 2
    json.dump(inventory, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
