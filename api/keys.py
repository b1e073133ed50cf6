"""Admin command for API keys: ``python -m api.keys create|revoke|list --index DIR``.

``create`` prints the full key once (only its salted hash is stored); keep it safe.
"""
from __future__ import annotations

import argparse
import json
import sys

from api.auth import KeyStore, service_db_path
from engine.errors import VidseekError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m api.keys", description="Manage vidseek API keys.")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create", help="create a key and print it once")
    c.add_argument("--index", required=True, metavar="DIR")
    c.add_argument("--tenant", required=True)
    c.add_argument("--scopes", default="search", help="comma-separated: search, ingest, admin")
    c.add_argument("--name", help="a label for the key (who holds it)")
    r = sub.add_parser("revoke", help="revoke a key by its id")
    r.add_argument("key_id")
    r.add_argument("--index", required=True, metavar="DIR")
    ls = sub.add_parser("list", help="list keys (never the secrets)")
    ls.add_argument("--index", required=True, metavar="DIR")
    ls.add_argument("--tenant")
    ls.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    store = KeyStore(service_db_path(args.index))
    try:
        if args.command == "create":
            token, key = store.create(args.tenant, args.scopes, name=args.name)
            print(token)
            print(f"key {key.key_id} for tenant {key.tenant} with scopes {','.join(key.scopes)};"
                  " this is the only time the key is shown", file=sys.stderr)
        elif args.command == "revoke":
            key = store.revoke(args.key_id)
            print(f"revoked {key.key_id} (tenant {key.tenant})")
        else:
            keys = store.list(tenant=args.tenant)
            if args.json:
                print(json.dumps([k.as_dict() for k in keys], indent=2))
            for k in keys if not args.json else []:
                state = "revoked" if k.revoked_at else "active"
                print(f"{k.key_id}  {k.tenant}  {','.join(k.scopes)}  {state}  {k.name or ''}")
        return 0
    except VidseekError as e:
        print(f"api.keys {args.command}: {e}", file=sys.stderr)
        return 2
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
