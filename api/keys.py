"""Admin command for API keys: ``python -m api.keys create|revoke|list|webhook-secret --index DIR``.

``create`` prints the full key once (only its salted hash is stored); keep it safe.
Scopes: ``search`` (read: search, videos, segments, thumbnails, media), ``ingest``
(write: ingest, jobs, delete, metadata updates), ``admin`` (both, plus ``/metrics``,
whose counts span every tenant: give it to operators only).

The first key ends local single-user mode: from then on a server on loopback refuses
requests without a key. A running server switches at once (and logs it); ``create``
says so when it finds one for the index (``DIR/server.json``).
"""
from __future__ import annotations

import argparse
import json
import sys

from api.auth import KeyStore, service_db_path
from vidseek.client import find_server
from engine.errors import VidseekError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m api.keys", description="Manage vidseek API keys.")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create", help="create a key and print it once")
    c.add_argument("--index", required=True, metavar="DIR")
    c.add_argument("--tenant", required=True)
    c.add_argument("--scopes", default="search",
                   help="comma-separated: search (read), ingest (write: ingest, jobs, delete, metadata),"
                        " admin (both, plus /metrics over all tenants); default search")
    c.add_argument("--name", help="a label for the key (who holds it)")
    r = sub.add_parser("revoke", help="revoke a key by its id")
    r.add_argument("key_id")
    r.add_argument("--index", required=True, metavar="DIR")
    ls = sub.add_parser("list", help="list keys (never the secrets)")
    ls.add_argument("--index", required=True, metavar="DIR")
    ls.add_argument("--tenant")
    ls.add_argument("--json", action="store_true")
    w = sub.add_parser("webhook-secret", help="print the secret that signs webhooks (made on first use)")
    w.add_argument("--index", required=True, metavar="DIR")
    args = p.parse_args(argv)
    store = KeyStore(service_db_path(args.index))
    try:
        if args.command == "create":
            first = store.active_count() == 0
            token, key = store.create(args.tenant, args.scopes, name=args.name)
            print(token)
            print(f"key {key.key_id} for tenant {key.tenant} with scopes {','.join(key.scopes)};"
                  " this is the only time the key is shown", file=sys.stderr)
            if first:
                server = find_server(args.index)
                where = f"the server running at {server.url} for this index" if server else "a server of this index"
                print(f"note: this is the first active key, so {where} leaves local single-user mode"
                      f"{' now' if server else ''}: requests without a key are refused (401) from then on"
                      " (`vidseek search`/`index` on this machine still go through it with server.json's"
                      " owner token). Revoke every key to return to local mode.", file=sys.stderr)
        elif args.command == "webhook-secret":
            print(store.secret("webhook_signing").hex())
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
