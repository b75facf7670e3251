#!/usr/bin/env python3
"""Check the log's hash chains with the Python standard library alone.

  python3 tools/verify_chain.py export.jsonl        # from `timeline export`
  python3 tools/verify_chain.py page-*.json          # from GET /v1/audit/log (one page per file)

Rule: hash_n = sha256(hash_{n-1} + event_n), hash_0 = 32 zero bytes, where event_n is
the stored event JSON exactly as stored: the `event` of a /v1/audit/log entry, or in an
export line the text before ',"hash":"' plus '}'. Sequences run 1, 2, 3... per partition.
Prints every partition's last sequence and head (compare them with a saved digest).
"""
import hashlib
import json
import sys


def entries(text):
    for line in filter(str.strip, text.split("\n")):  # not splitlines: JSON may hold U+2028
        page = json.loads(line)
        if "entries" in page:  # a /v1/audit/log page
            for e in page["entries"]:
                sequence, _, sub = e["id"].partition("-")
                ours = sub == "0" and "event" in e and "hash" in e  # else injected beside
                yield page["partition"], int(sequence), e.get("event"), e.get("hash"), ours
        else:  # an export line
            event = line[: line.rindex(',"hash":"')] + "}"
            yield page["partition"], page["sequence"], event, page["hash"], True


heads, broken = {}, 0
for name in sys.argv[1:] or ["-"]:
    with open(name if name != "-" else 0, encoding="utf-8") as handle:
        found = list(entries(handle.read()))
    for part, seq, event, stored, ours in found:
        last, prev = heads.get(part, (0, "00" * 32))
        if not ours:  # an id not <n>-0, or no event or hash: the next entry chains past it
            print(f"FOREIGN: partition {part} sequence {seq}: not an entry of the chain")
            broken += 1
            continue
        chained = hashlib.sha256(bytes.fromhex(prev) + event.encode()).hexdigest()
        if seq != last + 1 or stored != chained:
            print(f"BROKEN: partition {part} sequence {seq} (expected {last + 1})")
            broken += 1
        heads[part] = (seq, stored)
for part, (seq, head) in sorted(heads.items()):
    print(f"partition {part}: sequence {seq} head {head}")
print("chain intact" if not broken else f"{broken} break(s)")
sys.exit(1 if broken else 0)
