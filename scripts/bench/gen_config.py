#!/usr/bin/env python3
"""Adds the planning benchmark's tables to a pgconverge.json that lists the nodes.

Tables t0000..t(N-1), each with 9 columns of mixed types, a primary key, a UNIQUE constraint,
a plain two-column index and one foreign key. The foreign keys form a binary tree:
t(i) references t((i - 1) // 2), so every table but the root has a parent created before it,
and the root t0000 references itself (a parent/child hierarchy within one table). Every table
thus has exactly one foreign key, and the dependency depth stays about log2(N).

With WRITE_PATH=forwarding in the environment the config chooses the forwarding write path,
which takes no UNIQUE constraint besides the primary key: `code` gets a plain index instead.

Usage: gen_config.py CONFIG [TABLES]   (TABLES defaults to 1000; CONFIG is rewritten in place)
"""

import json
import os
import sys


def table(i: int) -> dict:
    name = f"t{i:04d}"
    parent = f"t{max(i - 1, 0) // 2:04d}"
    return {
        "name": name,
        "columns": [
            {"name": "id", "type": "uuid", "default": "gen_random_uuid()"},
            {"name": "parent_id", "type": "uuid"},
            {"name": "code", "type": "text", "nullable": False},
            {"name": "title", "type": "varchar(200)"},
            {"name": "amount", "type": "numeric(12,2)", "nullable": False, "default": "0"},
            {"name": "quantity", "type": "integer"},
            {"name": "active", "type": "boolean", "nullable": False, "default": "true"},
            {"name": "created_at", "type": "timestamptz", "nullable": False, "default": "now()"},
            {"name": "attributes", "type": "jsonb"},
        ],
        "primary_key": ["id"],
        "unique": [["code"]],
        "indexes": [{"columns": ["parent_id", "created_at"]}],
        "foreign_keys": [
            {"columns": ["parent_id"], "references": {"table": parent, "columns": ["id"]}}
        ],
    }


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 1
    path = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) == 3 else 1000
    if not 1 <= count <= 10000:
        print("TABLES must be between 1 and 10000", file=sys.stderr)
        return 1
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    config["tables"] = [table(i) for i in range(count)]
    write_path = os.environ.get("WRITE_PATH", "change_log")
    if write_path not in ("change_log", "forwarding"):
        print("WRITE_PATH must be change_log or forwarding", file=sys.stderr)
        return 1
    if write_path == "forwarding":
        config["replication"] = {"write_path": "forwarding"}
        for t in config["tables"]:
            del t["unique"]
            t["indexes"].append({"columns": ["code"]})
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
